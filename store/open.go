package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Open opens the store a DSN names:
//
//	sqlite:PATH   the embedded SQLite file at PATH (e.g. sqlite:data/adapter.db)
//	memory:       an in-memory store (nothing survives a restart)
func Open(dsn string) (Store, error) {
	if err := CheckDSN(dsn); err != nil {
		return nil, err
	}
	scheme, rest, _ := strings.Cut(dsn, ":")
	if strings.EqualFold(scheme, "memory") {
		return NewMemory(), nil
	}
	s, err := OpenSQLite(rest)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// CheckDSN says what is wrong with a DSN Open would refuse before trying
// it (configuration checks call it), nil when nothing is.
func CheckDSN(dsn string) error {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok {
		return errors.New("store: the DSN names no store: want sqlite:PATH or memory:")
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return checkSQLitePath(rest)
	case "memory":
		return nil
	case "postgres", "postgresql":
		return errors.New("store: postgres is not supported yet (use sqlite:PATH)")
	}
	if !schemePattern.MatchString(scheme) {
		// Not a scheme: what comes before the colon may be a password
		// (a keyword DSN with a colon further on).
		return errors.New("store: the DSN names no known store: want sqlite:PATH or memory:")
	}
	return fmt.Errorf("store: unknown store %q, want sqlite:PATH or memory:", scheme)
}

// schemePattern is what a URL scheme looks like (RFC 3986), short.
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,19}$`)

func checkSQLitePath(path string) error {
	switch {
	case path == "":
		return errors.New("store: DSN \"sqlite:\" needs a path, e.g. sqlite:data/adapter.db")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// Each connection of the pool would get its own database.
		return fmt.Errorf("store: sqlite: %q: want a file path (use the memory: store for no file)", path)
	}
	return nil
}

// OpenExisting opens the store a DSN names, like Open, but only one that
// exists and whose schema is this program's: for the jobs commands, which
// work on the server's store from another process (a relative path names
// another file when they are run from another folder, and an empty new
// store would list nothing and replay nothing, as if all were well).
func OpenExisting(dsn string) (Store, error) {
	scheme, rest, _ := strings.Cut(dsn, ":")
	switch strings.ToLower(scheme) {
	case "sqlite":
		if rest == "" {
			break // Open says what is wrong
		}
		abs, err := filepath.Abs(rest)
		if err != nil {
			abs = rest
		}
		if _, err := os.Stat(rest); err != nil {
			return nil, fmt.Errorf("store: no store at %s (the server creates it; run this from the server's folder, "+
				"or give store an absolute path)", abs)
		}
	case "memory":
		return nil, errors.New("store: the memory: store lives in the server's process; there is nothing to open from here")
	}
	if err := CheckDSN(dsn); err != nil {
		return nil, err
	}
	// CheckDSN passed and memory: returned above: a sqlite: path. Not
	// upgraded from here: the server that may be running on it is the
	// version that wrote it, and would go on writing the old way into the
	// new schema (migration 3's lane-head marks, for one).
	s, err := openSQLite(rest, false)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ErrSchemaBehind: the store's schema is older than this program's, and
// only the server upgrades it (OpenExisting).
var ErrSchemaBehind = errors.New("store: the store's schema is older than this program's; " +
	"start this version's server first (it upgrades the store), then run this again")
