package providers

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// arrive starts n requests of key 5 ms apart, each waiting at most
// maxWait for the one before it; request i takes work(i) before its step,
// which it records.
func arrive(order *ArrivalOrder, key string, n int, maxWait time.Duration, work func(i int) time.Duration) []int {
	var mu sync.Mutex
	var steps []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := order.Enter(context.Background(), key, maxWait)
			defer done()
			time.Sleep(work(i))
			mu.Lock()
			steps = append(steps, i)
			mu.Unlock()
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	return steps
}

// Requests of one key take their step in arrival order, the first one's
// slow work (media downloading) holding the later ones back, but never
// longer than maxWait; other keys are not held up.
func TestArrivalOrderKeepsTheOrderOfArrivalPerKey(t *testing.T) {
	var order ArrivalOrder
	slowFirst := func(i int) time.Duration {
		if i == 0 {
			return 100 * time.Millisecond
		}
		return 0
	}
	if steps := arrive(&order, "contact", 5, time.Second, slowFirst); !slices.Equal(steps, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("steps in order %v, want arrival order", steps)
	}
	if steps := arrive(&order, "contact", 3, 20*time.Millisecond, slowFirst); !slices.Equal(steps, []int{1, 2, 0}) {
		t.Fatalf("steps in order %v, want the later ones to go on after maxWait", steps)
	}

	hold := order.Enter(context.Background(), "busy contact", time.Second)
	defer hold()
	start := time.Now()
	order.Enter(context.Background(), "another contact", time.Second)()
	if waited := time.Since(start); waited > 100*time.Millisecond {
		t.Fatalf("another key waited %v", waited)
	}
	if len(order.last) != 1 {
		t.Fatalf("%d keys tracked, want only the busy one", len(order.last))
	}
}
