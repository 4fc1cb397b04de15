package providers

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// arrive starts n requests of key 5 ms apart; request i takes work(i)
// before its step, which it records in steps.
func arrive(order *ArrivalOrder, key string, n int, work func(i int) time.Duration, ctxOf func(i int) context.Context) []int {
	var mu sync.Mutex
	var steps []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := order.Enter(ctxOf(i), key)
			if err != nil {
				return
			}
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
// slow work (media downloading) holding the later ones back; a request
// that gives up waiting does not let the ones after it overtake the ones
// before it; other keys are not held up.
func TestArrivalOrderKeepsTheOrderOfArrivalPerKey(t *testing.T) {
	var order ArrivalOrder
	background := func(int) context.Context { return context.Background() }
	slowFirst := func(i int) time.Duration {
		if i == 0 {
			return 100 * time.Millisecond
		}
		return 0
	}
	if steps := arrive(&order, "contact", 5, slowFirst, background); !slices.Equal(steps, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("steps in order %v, want arrival order", steps)
	}

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	secondGivesUp := func(i int) context.Context {
		if i == 1 {
			return gone
		}
		return context.Background()
	}
	if steps := arrive(&order, "contact", 3, slowFirst, secondGivesUp); !slices.Equal(steps, []int{0, 2}) {
		t.Fatalf("steps in order %v, want 0 then 2 (1 gave up)", steps)
	}

	hold, err := order.Enter(context.Background(), "busy contact")
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	ctx, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	if done, err := order.Enter(ctx, "another contact"); err != nil {
		t.Fatalf("another key was held up: %v", err)
	} else {
		done()
	}
	if len(order.last) != 1 {
		t.Fatalf("%d keys tracked, want only the busy one", len(order.last))
	}
}
