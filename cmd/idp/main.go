// Command idp is an OAuth 2.0 and OpenID Connect identity provider with a
// user API.
//
//	idp [serve]                  run the server (the default)
//	idp migrate                  bring the database schema up to date and exit
//	idp client create --id ID [--public] [--first-party] --grant-types G1,G2 --scopes "S1 S2"
//	                  [--redirect-uri URI]… [--post-logout-redirect-uri URI]…
//	idp client list [--json]     show the registered clients
//	idp client delete --id ID    delete a client
//	idp client rotate-secret --id ID
//	                             replace a confidential client's secret
//	idp keys list [--json]       show the signing keys and their states
//	idp keys rotate [--now]      start a signing key rotation now
//	idp login                    sign in as a native app does and print the tokens
//	idp healthcheck              probe the server's /healthz
//	idp version                  print the build's version and VCS revision
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

	"idp/residency"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := cmdEnv{lookup: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr, trim: residency.Trim}
	if err := runEnv(ctx, os.Args[1:], e); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "idp:", err)
		}
		os.Exit(1)
	}
}

// errUsage is a command line that could not be parsed; the flag package has
// already said why, with the command's usage.
var errUsage = errors.New("usage")

const usage = `usage: idp <command> [flags]

commands:
  serve                 run the server ("idp" alone is "idp serve")
  migrate               bring the database schema up to date and exit
  client create --id ID [--public] [--first-party] --grant-types G1,G2
                --scopes "S1 S2" [--audience "A1 A2"] [--redirect-uri URI]...
                [--post-logout-redirect-uri URI]...
                        register a client; prints its secret, once
  client list [--json]  show the registered clients
  client delete --id ID delete a client
  client rotate-secret --id ID
                        replace a confidential client's secret; prints the
                        new one, once
  keys list [--json]    show the signing keys and their states
  keys rotate [--now]   start a signing key rotation (--now: switch at once)
  login [--issuer URL] [--client-id ID] [--scope "S1 S2"] [--timeout D]
        [--no-browser]  sign in through the browser as a native app does
                        (RFC 8252) and print the token response
  healthcheck [--url URL] [--timeout D]
                        exit 0 if the server's /healthz answers 200 within 2 s
  version               print the version and VCS revision of this build
  help                  print this

"idp <command> -h" shows a command's own flags. Every command also reads the
configuration, IDP_... environment variables each with a flag of the same
meaning: "idp serve -h" lists them all.
`

// run is the whole program, with its environment passed in so that tests
// can run it in-process. A request for help (-h, --help, help) prints it on
// stdout and succeeds.
func run(ctx context.Context, args []string, lookup lookupEnv, stdout, stderr io.Writer) error {
	return runEnv(ctx, args, cmdEnv{lookup: lookup, stdout: stdout, stderr: stderr})
}

func runEnv(ctx context.Context, args []string, e cmdEnv) error {
	err := dispatch(ctx, args, e)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, e cmdEnv) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "--h":
			fmt.Fprint(e.stdout, usage)
			return nil
		}
		if args[0] != "" && args[0][0] != '-' {
			cmd, args = args[0], args[1:]
		}
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
		return cmdServe(ctx, args, e)
	case "migrate":
		return cmdMigrate(ctx, args, e)
	case "client":
		switch s := sub(); s {
		case "create":
			return cmdClientCreate(ctx, args, e)
		case "list":
			return cmdClientList(ctx, args, e)
		case "delete":
			return cmdClientDelete(ctx, args, e)
		case "rotate-secret":
			return cmdClientRotateSecret(ctx, args, e)
		default:
			return unknownSub(e, "client", s, args, "create", "list", "delete", "rotate-secret")
		}
	case "keys":
		switch s := sub(); s {
		case "list":
			return cmdKeysList(ctx, args, e)
		case "rotate":
			return cmdKeysRotate(ctx, args, e)
		default:
			return unknownSub(e, "keys", s, args, "list", "rotate")
		}
	case "login":
		return cmdLogin(ctx, args, e)
	case "healthcheck":
		return cmdHealthcheck(ctx, args, e)
	case "version":
		return cmdVersion(args, e)
	case "help":
		fmt.Fprint(e.stdout, usage)
		return nil
	default:
		fmt.Fprint(e.stderr, usage)
		return fmt.Errorf("unknown command %q (see the list above)", cmd)
	}
}

// unknownSub explains a missing or unknown subcommand of group; "idp group
// -h" lists the subcommands as help.
func unknownSub(e cmdEnv, group, got string, args []string, want ...string) error {
	list := ""
	for i, w := range want {
		switch {
		case i == 0:
		case i == len(want)-1:
			list += " or "
		default:
			list += ", "
		}
		list += fmt.Sprintf("%q", group+" "+w)
	}
	if got == "" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(e.stdout, "usage: idp %s <subcommand> [flags]: %s\n\"idp %s <subcommand> -h\" shows its flags; \"idp help\" lists every command.\n", group, list, group)
			return flag.ErrHelp
		}
		return fmt.Errorf("%q needs a subcommand: %s (\"idp help\" lists them)", group, list)
	}
	return fmt.Errorf("unknown command %q: want %s", group+" "+got, list)
}
