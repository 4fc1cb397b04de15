package testkit

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Records is an in-memory providers.Records for tests, with failures on
// demand. Like the real stores it refuses work for a context that is over.
// It satisfies providers.Records without importing it, so that the
// providers' own tests may use testkit.
type Records struct {
	// Expiries holds the expiry of every record put with PutUntil.
	Expiries Expiries

	mu       sync.Mutex
	values   map[string][]byte // by recordKey
	failGets map[string]error  // by namespace; "" for every namespace
	failPuts map[string]error  // by namespace; "" for every namespace
	puts     []string          // "ns|key" of every successful put, in order
}

// NewRecords returns an empty store that fails nothing.
func NewRecords() *Records {
	return &Records{values: map[string][]byte{}, failGets: map[string]error{}, failPuts: map[string]error{}}
}

func recordKey(ns, key string) string { return ns + "\x00" + key }

// Put stores a copy of value under ns/key.
func (r *Records) Put(ctx context.Context, ns, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := failureFor(r.failPuts, ns); err != nil {
		return err
	}
	r.values[recordKey(ns, key)] = slices.Clone(value)
	r.puts = append(r.puts, ns+"|"+key)
	return nil
}

// PutUntil is Put that also records expires in r.Expiries.
func (r *Records) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	err := r.Put(ctx, ns, key, value)
	if err == nil {
		r.Expiries.Set(ns, key, expires)
	}
	return err
}

// Get returns a copy of the value stored under ns/key.
func (r *Records) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := failureFor(r.failGets, ns); err != nil {
		return nil, false, err
	}
	v, ok := r.values[recordKey(ns, key)]
	return slices.Clone(v), ok, nil
}

// FailGets makes every Get in namespace ns (every namespace if ns is "")
// return err; a nil err stops the failures.
func (r *Records) FailGets(ns string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failGets[ns] = err
}

// FailPuts makes every Put and PutUntil in namespace ns (every namespace if
// ns is "") return err; a nil err stops the failures.
func (r *Records) FailPuts(ns string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failPuts[ns] = err
}

// failureFor is the error set for ns, else the one set for every namespace.
func failureFor(failures map[string]error, ns string) error {
	if err := failures[ns]; err != nil {
		return err
	}
	return failures[""]
}

// Puts lists "ns|key" of every successful Put and PutUntil, in order.
func (r *Records) Puts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

// Value returns a copy of what is stored under ns/key, for assertions: no
// context, and the failures set with FailGets do not apply.
func (r *Records) Value(ns, key string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[recordKey(ns, key)]
	return slices.Clone(v), ok
}
