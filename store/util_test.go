package store_test

import (
	"testing"

	"github.com/bonychat/bonychat-adapter/store"
)

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE x = ? AND y = ?`:           `SELECT a FROM t WHERE x = $1 AND y = $2`,
		`SELECT '?' FROM t WHERE "q?" = ? -- why?` + "\n": `SELECT '?' FROM t WHERE "q?" = $1 -- why?` + "\n",
		`UPDATE t SET a = a - 1 WHERE b = ?`:              `UPDATE t SET a = a - 1 WHERE b = $1`,
		`no placeholders`:                                 `no placeholders`,
	} {
		if got := store.Rebind(store.BindDollar, in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
		if got := store.Rebind(store.BindQuestion, in); got != in {
			t.Errorf("Rebind(question, %q) = %q", in, got)
		}
	}
}
