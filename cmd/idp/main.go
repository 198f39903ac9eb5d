// Command idp is an OAuth 2.0 and OpenID Connect identity provider with a
// user API.
//
//	idp [serve]       run the server (the default)
//	idp migrate       bring the database schema up to date and exit
//	idp client create --id ID [--public] --grant-types G1,G2 --scopes "S1 S2" [--redirect-uri URI]…
//	idp keys list     show the signing keys and their states
//	idp keys rotate   start a signing key rotation now
//
// Every command reads the same configuration: IDP_… environment variables,
// each with a flag of the same meaning (`idp serve -h` lists them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "idp:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  idp [serve] [flags]         run the server
  idp migrate [flags]         bring the database schema up to date and exit
  idp client create --id ID [--public] --grant-types G1,G2 --scopes "S1 S2" [--redirect-uri URI]... [flags]
  idp keys list [flags]       show the signing keys and their states
  idp keys rotate [--now] [flags]
                              start a signing key rotation (--now: switch at once)
  idp healthcheck [--url URL] exit 0 if the server's /healthz answers 200 within 2 s
Run "idp serve -h" for the configuration flags and their IDP_ variables.
`

// run is the whole program, with its environment passed in so that tests
// can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	sub := func() string {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			return ""
		}
		s := args[0]
		args = args[1:]
		return s
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, getenv, stderr)
	case "migrate":
		return cmdMigrate(ctx, args, getenv, stdout, stderr)
	case "client":
		if s := sub(); s != "create" {
			return fmt.Errorf("unknown command %q: want \"client create\"", "client "+s)
		}
		return cmdClientCreate(ctx, args, getenv, stdout, stderr)
	case "keys":
		switch s := sub(); s {
		case "list":
			return cmdKeysList(ctx, args, getenv, stdout, stderr)
		case "rotate":
			return cmdKeysRotate(ctx, args, getenv, stdout, stderr)
		default:
			return fmt.Errorf("unknown command %q: want \"keys list\" or \"keys rotate\"", "keys "+s)
		}
	case "healthcheck":
		return cmdHealthcheck(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
