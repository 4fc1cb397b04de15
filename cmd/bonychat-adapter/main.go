// Command bonychat-adapter connects BonyChat's Custom Channel to SMS, MMS,
// WhatsApp and e-mail providers.
//
//	bonychat-adapter serve --config FILE      serve (or BONYCHAT_CONFIG=FILE)
//	bonychat-adapter config check --config FILE
//	bonychat-adapter jobs list|retry --config FILE …
//	bonychat-adapter --version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/bonychat/bonychat-adapter/adapter"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  bonychat-adapter serve [--config FILE]          serve (config also from BONYCHAT_CONFIG)
  bonychat-adapter config check [--config FILE]   validate a config and list every problem
  bonychat-adapter jobs list [--config FILE] [--state pending|leased|done|dead] [--channel ID] [--queue outbound|platform]
  bonychat-adapter jobs retry [--config FILE] (JOB_ID ... | --dead [--channel ID])
  bonychat-adapter jobs drop [--config FILE] (JOB_ID ... | --dead [--channel ID])
                                                  list jobs, queue dead jobs again, or delete them for good
                                                  (works while the server runs)
  bonychat-adapter --version                      print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, "bonychat-adapter", version)
		return 0
	case "serve":
		return serve(args[1:], stderr)
	case "jobs":
		return jobs(args[1:], stdout, stderr)
	case "config":
		if len(args) > 1 && args[1] == "check" {
			return configCheck(args[2:], stdout, stderr)
		}
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("BONYCHAT_CONFIG"), "configuration file (default $BONYCHAT_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 { // a bare file name would otherwise be ignored silently
		fmt.Fprintf(stderr, "unexpected argument %q: pass the file with --config FILE\n", fs.Arg(0))
		return "", false
	}
	if *path == "" {
		fmt.Fprintln(stderr, "no configuration: pass --config FILE or set BONYCHAT_CONFIG")
		return "", false
	}
	return *path, true
}

func configCheck(args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("config check", args, stderr)
	if !ok {
		return 2
	}
	if _, err := adapter.LoadConfig(path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, path+": ok")
	return 0
}

func serve(args []string, stderr io.Writer) int {
	path, ok := configFlag("serve", args, stderr)
	if !ok {
		return 2
	}
	cfg, err := adapter.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := adapter.NewLogger(cfg.Log, stderr)
	srv, err := adapter.New(cfg, adapter.Options{Version: version, Logger: log})
	if err != nil {
		log.Error("start-up failed", "error", err.Error())
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "error", err.Error())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals()...)
	defer stop()
	// A second signal during the drain stops at once (the default action);
	// what was accepted is in the store either way.
	context.AfterFunc(ctx, stop)
	defer srv.Close()
	if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("server stopped with an error", "error", err.Error())
		return 1
	}
	return 0
}

// stopSignals start a graceful stop: SIGTERM, SIGINT, and SIGHUP (a closed
// terminal) unless the process was started with it ignored (nohup), which
// must stay so.
func stopSignals() []os.Signal {
	signals := []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	if !signal.Ignored(syscall.SIGHUP) {
		signals = append(signals, syscall.SIGHUP)
	}
	return signals
}
