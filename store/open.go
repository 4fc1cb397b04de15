package store

import (
	"errors"
	"fmt"
	"strings"
)

// Open opens the store a DSN names:
//
//	sqlite:PATH   the embedded SQLite file at PATH (e.g. sqlite:data/adapter.db)
//	memory:       an in-memory store (nothing survives a restart)
func Open(dsn string) (Store, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok {
		return nil, fmt.Errorf("store: DSN %q: want sqlite:PATH or memory:", dsn)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		if rest == "" {
			return nil, errors.New("store: DSN \"sqlite:\" needs a path, e.g. sqlite:data/adapter.db")
		}
		s, err := OpenSQLite(rest)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "memory":
		return NewMemory(), nil
	case "postgres", "postgresql":
		return nil, fmt.Errorf("store: DSN %q: postgres is not supported yet (use sqlite:PATH)", redactDSN(dsn))
	}
	return nil, fmt.Errorf("store: DSN %q: unknown store %q, want sqlite:PATH or memory:", redactDSN(dsn), scheme)
}

// redactDSN hides what may be a password in a DSN quoted in an error.
func redactDSN(dsn string) string {
	if i := strings.LastIndex(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "***" + dsn[i:]
		}
		return "***" + dsn[i:]
	}
	return dsn
}
