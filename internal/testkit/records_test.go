package testkit_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
)

var _ providers.Records = (*testkit.Records)(nil)

func TestRecordsFailuresByNamespaceAndForAll(t *testing.T) {
	ctx := context.Background()
	r := testkit.NewRecords()
	down := errors.New("down")

	r.FailPuts("a", down)
	if err := r.Put(ctx, "a", "k", []byte("v")); !errors.Is(err, down) {
		t.Fatalf("Put in a failing namespace = %v, want %v", err, down)
	}
	if err := r.PutUntil(ctx, "a", "k", []byte("v"), time.Now()); !errors.Is(err, down) {
		t.Fatalf("PutUntil in a failing namespace = %v, want %v", err, down)
	}
	if err := r.Put(ctx, "b", "k", []byte("v")); err != nil {
		t.Fatalf("Put in another namespace = %v", err)
	}
	r.FailGets("b", down)
	if _, _, err := r.Get(ctx, "b", "k"); !errors.Is(err, down) {
		t.Fatalf("Get in a failing namespace = %v, want %v", err, down)
	}
	if v, ok := r.Value("b", "k"); !ok || string(v) != "v" {
		t.Fatalf("Value under a failing Get = %q, %v; want the record", v, ok)
	}
	if _, _, err := r.Get(ctx, "a", "k"); err != nil {
		t.Fatalf("Get in another namespace = %v", err)
	}

	r.FailPuts("a", nil)
	r.FailGets("b", nil)
	if err := r.Put(ctx, "a", "k", []byte("v")); err != nil {
		t.Fatalf("Put after the failure was cleared = %v", err)
	}
	if _, _, err := r.Get(ctx, "b", "k"); err != nil {
		t.Fatalf("Get after the failure was cleared = %v", err)
	}

	r.FailPuts("", down)
	r.FailGets("", down)
	for _, ns := range []string{"a", "b", "c"} {
		if err := r.Put(ctx, ns, "k", nil); !errors.Is(err, down) {
			t.Fatalf("Put in %q with every namespace failing = %v", ns, err)
		}
		if _, _, err := r.Get(ctx, ns, "k"); !errors.Is(err, down) {
			t.Fatalf("Get in %q with every namespace failing = %v", ns, err)
		}
	}
}

func TestRecordsRefuseAContextThatIsOver(t *testing.T) {
	r := testkit.NewRecords()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Put(ctx, "a", "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want %v", err, context.Canceled)
	}
	if err := r.PutUntil(ctx, "a", "k", []byte("v"), time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutUntil = %v, want %v", err, context.Canceled)
	}
	if _, _, err := r.Get(ctx, "a", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want %v", err, context.Canceled)
	}
	if _, ok := r.Value("a", "k"); ok || len(r.Puts()) != 0 || !r.Expiries.Of("a", "k").IsZero() {
		t.Fatal("a refused put was stored")
	}
}

func TestRecordsPutsInOrderWithExpiries(t *testing.T) {
	ctx := context.Background()
	r := testkit.NewRecords()
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := r.Put(ctx, "b", "k1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := r.PutUntil(ctx, "a", "k2", []byte("2"), until); err != nil {
		t.Fatal(err)
	}
	r.FailPuts("b", errors.New("down"))
	_ = r.Put(ctx, "b", "k3", []byte("3"))
	if err := r.Put(ctx, "b|x", "k1", []byte("4")); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Puts(), []string{"b|k1", "a|k2", "b|x|k1"}; !slices.Equal(got, want) {
		t.Fatalf("Puts() = %q, want %q", got, want)
	}
	if got := r.Expiries.Of("a", "k2"); !got.Equal(until) {
		t.Fatalf("expiry of a/k2 = %v, want %v", got, until)
	}
	if got := r.Expiries.Of("b", "k1"); !got.IsZero() {
		t.Fatalf("a plain Put has expiry %v", got)
	}
	if v, _ := r.Value("b", "k1"); string(v) != "1" {
		t.Fatalf("b/k1 = %q: a namespace with a separator in it overwrote another", v)
	}
}

func TestRecordsValuesAreCopies(t *testing.T) {
	ctx := context.Background()
	r := testkit.NewRecords()
	in := []byte("abc")
	if err := r.Put(ctx, "a", "k", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	got, ok, err := r.Get(ctx, "a", "k")
	if err != nil || !ok || string(got) != "abc" {
		t.Fatalf("Get = %q, %v, %v; want what was put, untouched by the caller's later write", got, ok, err)
	}
	got[0] = 'Y'
	value, _ := r.Value("a", "k")
	if string(value) != "abc" {
		t.Fatalf("Value = %q: a Get's result shares the store's bytes", value)
	}
	value[0] = 'Z'
	if again, _, _ := r.Get(ctx, "a", "k"); string(again) != "abc" {
		t.Fatalf("Get = %q: a Value's result shares the store's bytes", again)
	}
	if _, ok, err := r.Get(ctx, "a", "missing"); ok || err != nil {
		t.Fatalf("Get of a missing key = %v, %v; want not found", ok, err)
	}
}
