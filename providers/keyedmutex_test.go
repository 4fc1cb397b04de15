package providers

import (
	"sync"
	"testing"
	"time"
)

// One key is held by one caller at a time; other keys are free meanwhile;
// no entry outlives its last holder.
func TestKeyedMutexSerialisesOneKeyOnly(t *testing.T) {
	var k KeyedMutex
	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer k.Lock("token")()
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
		}()
	}
	unlock := k.Lock("busy")
	done := make(chan struct{})
	go func() { k.Lock("other")(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("another key waited for a held one")
	}
	unlock()
	wg.Wait()
	if most != 1 {
		t.Fatalf("%d callers held one key at once", most)
	}
	if len(k.locks) != 0 {
		t.Fatalf("%d entries left after every holder let go", len(k.locks))
	}
}
