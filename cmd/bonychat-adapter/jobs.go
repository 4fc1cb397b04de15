package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/bonychat/bonychat-adapter/adapter"
	"github.com/bonychat/bonychat-adapter/store"
)

// jobs runs "jobs list", "jobs retry" and "jobs drop" against the configured store; the
// SQLite store takes these from another process while the server runs.
func jobs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "list":
		return jobsList(args[1:], stdout, stderr)
	case "retry":
		return jobsRetry(args[1:], stdout, stderr)
	case "drop":
		return jobsDrop(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// openStore opens the store the configuration names; it must exist (the
// server's). Only the store setting is read: the operator's shell need not
// hold every channel's secrets.
func openStore(configPath string, stderr io.Writer) (store.Store, bool) {
	dsn, err := adapter.LoadStoreDSN(configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	st, err := store.OpenExisting(dsn)
	if err != nil {
		fmt.Fprintln(stderr, "open store:", err)
		return nil, false
	}
	return st, true
}

func jobsList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("BONYCHAT_CONFIG"), "configuration file")
	state := fs.String("state", "", "pending | leased | done | dead (default: all)")
	channel := fs.String("channel", "", "only this channel")
	queue := fs.String("queue", "", "outbound | platform (default: both)")
	limit := fs.Int("limit", 200, "at most this many jobs")
	if fs.Parse(args) != nil || fs.NArg() > 0 || *configPath == "" {
		fmt.Fprintln(stderr, "usage: bonychat-adapter jobs list --config FILE [--state S] [--channel ID] [--queue Q] [--limit N]")
		return 2
	}
	// A mistyped filter would list nothing, just like "nothing is dead".
	if *state != "" && !slices.Contains([]store.State{store.Pending, store.Leased, store.Done, store.Dead}, store.State(*state)) {
		fmt.Fprintf(stderr, "--state %q: want pending, leased, done or dead\n", *state)
		return 2
	}
	if *queue != "" && !slices.Contains([]store.Queue{store.Outbound, store.Platform}, store.Queue(*queue)) {
		fmt.Fprintf(stderr, "--queue %q: want outbound or platform\n", *queue)
		return 2
	}
	if *limit <= 0 {
		fmt.Fprintf(stderr, "--limit %d: want at least 1\n", *limit)
		return 2
	}
	st, ok := openStore(*configPath, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	list, err := st.Jobs(context.Background(), store.JobFilter{Queue: store.Queue(*queue), State: store.State(*state),
		ChannelID: *channel, Limit: *limit})
	if err != nil {
		fmt.Fprintln(stderr, "list jobs:", err)
		return 1
	}
	printJobs(stdout, list)
	if len(list) == *limit {
		fmt.Fprintf(stderr, "note: %d jobs shown, the oldest first; more may match (raise --limit)\n", *limit)
	}
	return 0
}

func printJobs(w io.Writer, list []store.Job) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tSTATE\tCHANNEL\tCONTACT\tMID\tATTEMPTS\tNEXT\tLAST ERROR")
	for _, j := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Queue, j.State,
			oneLine(j.ChannelID, 64), oneLine(j.ContactID, 64), oneLine(j.MID, 64),
			j.Attempts, j.NextAt.UTC().Format(time.RFC3339), oneLine(j.LastError, 80))
	}
	_ = tw.Flush()
}

// oneLine folds s onto one line of at most max characters for a terminal.
// A job's last error may quote what a remote host answered (BonyChat's body,
// a redirect's Location), so control and format characters (escape
// sequences, bidi overrides) are shown as '?' rather than sent to the
// operator's terminal.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func jobsRetry(args []string, stdout, stderr io.Writer) int {
	return onDeadJobs("retry", args, stdout, stderr, store.Store.Revive, "queued again", "retried")
}

func jobsDrop(args []string, stdout, stderr io.Writer) int {
	return onDeadJobs("drop", args, stdout, stderr,
		func(st store.Store, ctx context.Context, ids []int64, _ time.Time) (int, error) {
			return st.Drop(ctx, ids)
		},
		"deleted", "deleted")
}

// deadJobOp is Revive or Drop.
type deadJobOp func(store.Store, context.Context, []int64, time.Time) (int, error)

// onDeadJobs runs "jobs retry" or "jobs drop": op on the dead jobs given by
// ID, or on every dead one with --dead (of one channel with --channel). It
// exits 1 if a job given by ID was not dead (it is left as it is).
func onDeadJobs(name string, args []string, stdout, stderr io.Writer, op deadJobOp, done, verb string) int {
	req, code := deadJobArgs(name, args, stderr)
	if code != 0 {
		return code
	}
	st, ok := openStore(req.configPath, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	ctx := context.Background()
	var n int
	var err error
	if req.channel != "" {
		n, err = onDeadOfChannel(ctx, st, req.channel, op)
		if err == nil && n == 0 {
			fmt.Fprintf(stderr, "channel %q has no dead jobs\n", req.channel)
		}
	} else {
		n, err = op(st, ctx, req.ids, time.Now())
	}
	if err != nil {
		if n > 0 { // --channel: the chunks before the error are done for good
			fmt.Fprintf(stdout, "%d job(s) %s\n", n, done)
		}
		fmt.Fprintf(stderr, "%s jobs: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "%d job(s) %s\n", n, done)
	if len(req.ids) > 0 && n < len(req.ids) {
		fmt.Fprintf(stderr, "only dead jobs can be %s; the others were left as they are\n", verb)
		return 1
	}
	return 0
}

// deadChunk is how many jobs one store call of onDeadOfChannel takes, so
// that the server's writes run between them.
const deadChunk = 1000

// onDeadOfChannel runs op on the dead jobs of one channel, by ID, a chunk
// at a time. (With no IDs op would take every dead job of every channel.)
func onDeadOfChannel(ctx context.Context, st store.Store, channel string, op deadJobOp) (int, error) {
	dead, err := st.Jobs(ctx, store.JobFilter{State: store.Dead, ChannelID: channel})
	if err != nil {
		return 0, err
	}
	total := 0
	for chunk := range slices.Chunk(dead, deadChunk) {
		ids := make([]int64, len(chunk))
		for i, j := range chunk {
			ids[i] = j.ID
		}
		n, err := op(st, ctx, ids, time.Now())
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// deadJobsRequest is what "jobs retry" or "jobs drop" was asked for.
type deadJobsRequest struct {
	configPath string
	ids        []int64 // the jobs given by ID; none with --dead
	channel    string  // with --dead: only this channel's dead jobs
}

// deadJobArgs parses "--config FILE (JOB_ID ... | --dead [--channel ID])";
// a usage error is exit code 2.
func deadJobArgs(name string, args []string, stderr io.Writer) (deadJobsRequest, int) {
	fs := flag.NewFlagSet("jobs "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("BONYCHAT_CONFIG"), "configuration file")
	allDead := fs.Bool("dead", false, name+" every dead job")
	channel := fs.String("channel", "", "with --dead: only the dead jobs of this channel")
	parsed := fs.Parse(args) == nil
	// An empty --channel (an unset variable) would mean every channel's.
	channelGiven := false
	fs.Visit(func(f *flag.Flag) { channelGiven = channelGiven || f.Name == "channel" })
	if !parsed || *configPath == "" || (*allDead == (fs.NArg() > 0)) || (channelGiven && (*channel == "" || !*allDead)) {
		fmt.Fprintf(stderr, "usage: bonychat-adapter jobs %s --config FILE (JOB_ID ... | --dead [--channel ID])\n", name)
		return deadJobsRequest{}, 2
	}
	req := deadJobsRequest{configPath: *configPath, channel: *channel}
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			fmt.Fprintf(stderr, "not a job ID: %q\n", a)
			return deadJobsRequest{}, 2
		}
		if !slices.Contains(req.ids, id) {
			req.ids = append(req.ids, id)
		}
	}
	return req, 0
}
