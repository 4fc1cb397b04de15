package adapter

import (
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// A job a crash cut off mid-send is recovered as interrupted at start-up.
// If the drain begins while the worker's lease of it is on its way,
// tryDispatch hands it back pending; that hand-back must keep the mark, or
// the next start-up sends it blindly although it may already have been
// sent.
func TestDrainHandBackKeepsTheInterruptedMark(t *testing.T) {
	st := store.NewMemory()
	interruptedJob(t, st, "m-cut-drain")

	// Start-up after the crash: recovered as interrupted, then the drain
	// starts just as the lease arrives.
	h1 := buildHarness(t, st, nil, &fakeProvider{})
	if err := h1.srv.pipe.recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	h1.srv.pipe.stopDispatch()
	if n := h1.srv.pipe.leaseOutbound(t.Context()); n != 1 {
		t.Fatalf("leased %d lanes, want 1", n)
	}
	j, err := st.JobByMID(t.Context(), store.Outbound, "m-cut-drain")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.Pending {
		t.Fatalf("job is %s, want pending (handed back)", j.State)
	}
	if j.LastError != interruptedMark {
		t.Errorf("hand-back during the drain erased the interrupted mark: last error %q", j.LastError)
	}

	// Next start-up: the job must not be sent blindly.
	fake := &fakeProvider{}
	h2 := newHarnessOn(t, st, nil, fake)
	waitFor(t, func() bool { return len(h2.statusesFor("m-cut-drain")) == 1 })
	s := h2.statusesFor("m-cut-drain")[0]
	if fake.sentCount() != 0 || s.Value != schema.StatusFailed || !strings.Contains(s.Message, "may have been sent") {
		t.Fatalf("a send a crash cut off was sent again blindly: %d sends, status %+v", fake.sentCount(), s)
	}
}
