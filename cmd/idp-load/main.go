// Command idp-load measures a running idp: it drives one scenario after
// another closed-loop (N workers, each sending its next request as soon as
// the previous one is answered, which measures capacity) and prints each
// scenario's rate, latency percentiles and errors, as a table and as JSON.
//
//	idp-load [flags]          load a running server at -url
//	idp-load limits [flags]   measure this machine's RS256 and argon2id ceilings
//	idp-load bench [flags]    what `make bench` runs: start idp, load it, compare
//
// It prepares its own users (POST /v1/users with the public client -client)
// and needs a confidential client with client_credentials and users:stats
// (-client-id, -client-secret) for the client_credentials and stats
// scenarios. The browser sign-in scenarios (authorize, loginpage,
// loginflood) sign its users in through the login page; -client must have
// the authorization_code grant and -redirect-uri, and be first-party (no
// consent page). With -login and -password it loads a peer instead, another
// OpenID provider beside idp (see docs/performance.md): it logs that
// account in rather than signing users up, and reads every endpoint from
// the discovery document. Run a subcommand with -h for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "idp-load:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "limits":
			return cmdLimits(ctx, args[1:], getenv, stdout, stderr)
		case "bench":
			return cmdBench(ctx, args[1:], getenv, stdout, stderr)
		case "load":
			args = args[1:]
		}
	}
	cfg, err := parseLoadArgs(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.Log = stderr
	// With the server's pid, its resident set is followed over the whole
	// run: at the start (the idle figure of a server just started) and at
	// its peak, the memory figures of a side-by-side comparison.
	var rss *rssSampler
	if cfg.PID > 0 {
		if rss, err = startRSSSampler(cfg.PID, 50*time.Millisecond); err != nil {
			return fmt.Errorf("-pid %d: %w", cfg.PID, err)
		}
	}
	rep, err := runLoad(ctx, cfg)
	mem := serverMemory(rss, rep)
	if err != nil {
		return err
	}
	if err := writeTable(stdout, rep); err != nil {
		return err
	}
	if mem != nil {
		fmt.Fprintf(stdout, "server RSS: %.1f MiB at the start, peak %.1f MiB (%s)\n", mem.StartMiB, mem.PeakMiB, mem.PeakSource)
	}
	if cfg.JSONPath != "" {
		return writeJSON(cfg.JSONPath, standaloneReport{rep, mem}, createFile)
	}
	return nil
}

// standaloneReport is the JSON of a load run: the report and, with -pid,
// the server's memory over the run.
type standaloneReport struct {
	*Report
	ServerRSS *ServerMemory `json:"server_rss,omitempty"`
}

// ServerMemory is the server's resident set over a load run.
type ServerMemory struct {
	StartMiB   float64 `json:"start_mib"` // before the first request
	PeakMiB    float64 `json:"peak_mib"`
	PeakSource string  `json:"peak_source"`
}

// serverMemory stops s and returns what it saw, nil without a sampler. The
// floods reset the server's high-water mark for their own peak, so the
// run's peak is the highest of the run's samples, the high-water mark since
// the last reset, and the floods' peaks.
func serverMemory(s *rssSampler, rep *Report) *ServerMemory {
	if s == nil {
		return nil
	}
	peak, start, _ := s.finish()
	m := &ServerMemory{StartMiB: float64(start) / 1024, PeakMiB: float64(peak) / 1024, PeakSource: "highest VmRSS sampled every 50 ms"}
	if s.hwmReset {
		m.PeakSource = "VmHWM, reset at the start, and VmRSS sampled every 50 ms"
	}
	if rep != nil {
		for _, f := range []*FloodResult{rep.Flood, rep.LoginFlood, rep.PictureFlood} {
			if f != nil {
				m.PeakMiB = max(m.PeakMiB, f.PeakRSSMiB)
			}
		}
	}
	return m
}

func createFile(path string) (io.WriteCloser, error) { return os.Create(path) }

// addLoadFlags binds the flags of a load run to cfg; standalone adds those
// that the bench sets itself (the service client, the server's processes).
func addLoadFlags(fs *flag.FlagSet, cfg *loadConfig, scenarios *string, standalone bool) {
	fs.StringVar(scenarios, "scenarios", strings.Join(allScenarios, ","),
		"comma-separated scenarios to run: "+strings.Join(allScenarios, ", ")+", "+strings.Join(floodScenarios, ", ")+" (only when named)")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long each scenario runs")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "workers per scenario, each sending its next request when the last is answered")
	fs.IntVar(&cfg.LoginConcurrency, "login-concurrency", 0, "workers of password and signup, which the server's hashing slots bound (0: twice the slots, IDP_HASH_CONCURRENCY or one per core)")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "split each scenario's -duration into this many slices, run in interleaved rounds")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&cfg.Client, "client", "mobile", "public client with the password, refresh_token and authorization_code grants, for signup, password, refresh and the browser sign-in")
	fs.StringVar(&cfg.RedirectURI, "redirect-uri", "http://127.0.0.1/callback", "a redirect URI of -client, for the browser sign-in (authorize, loginpage, loginflood); the load never follows it")
	fs.IntVar(&cfg.Users, "users", 0, "users to sign up first, or with -login logins of that account (password logins cycle through them; each is one refresh chain); 0: one per worker")
	fs.StringVar(&cfg.Prefix, "prefix", "", "username prefix of the users this run creates (default: random)")
	fs.IntVar(&cfg.FloodConcurrency, "flood-concurrency", 200, "workers of the flood scenarios (password grants, login-page POSTs)")
	fs.DurationVar(&cfg.FloodDuration, "flood-duration", 10*time.Second, "how long each flood scenario runs")
	if standalone {
		fs.StringVar(&cfg.ClientID, "client-id", "", "confidential client with client_credentials and users:stats (client_credentials and stats scenarios)")
		fs.StringVar(&cfg.ClientSecret, "client-secret", "", "secret of -client-id")
		fs.IntVar(&cfg.PID, "pid", 0, "process id of the server, on this machine: its CPU time is counted, its resident set followed (at the start and its peak), and the flood samples its memory")
		fs.IntVar(&cfg.DBPID, "db-pid", 0, "process id of the server's database server, on this machine: its CPU time counts as the server's")
		fs.StringVar(&cfg.DebugURL, "debug-url", "", "base URL of the server's operations listener with the profiler (IDP_OPS_ADDR, IDP_OPS_PROFILER=true), for -profile-dir")
		fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "write a CPU profile of the server for each scenario and round here (<scenario>-<round>.pprof; needs -debug-url)")
		fs.StringVar(&cfg.Login, "login", "", "an existing account of a peer (another OpenID provider loaded side by side with idp): sign nobody up, log this account in for password, refresh and userinfo; the endpoints come from the discovery document")
		fs.StringVar(&cfg.Password, "password", "", "password of -login")
		fs.StringVar(&cfg.LoginClientSecret, "login-client-secret", "", "secret of -client, sent with HTTP Basic on its token requests, for a peer whose password-grant client is confidential")
	}
}

// checkLoadConfig validates a load configuration after its flags are parsed.
func checkLoadConfig(cfg *loadConfig, scenarios string) error {
	cfg.Scenarios = nil
	for s := range strings.SplitSeq(scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if s == "all" {
			if cfg.Login != "" {
				cfg.Scenarios = append(cfg.Scenarios, peerScenarios()...)
				continue
			}
			cfg.Scenarios = append(cfg.Scenarios, allScenarios...)
			continue
		}
		if !slices.Contains(allScenarios, s) && !slices.Contains(floodScenarios, s) {
			return fmt.Errorf("-scenarios: unknown scenario %q (want %s, %s)", s, strings.Join(allScenarios, ", "), strings.Join(floodScenarios, ", "))
		}
		cfg.Scenarios = append(cfg.Scenarios, s)
	}
	if len(cfg.Scenarios) == 0 {
		return errors.New("-scenarios: no scenario named")
	}
	switch {
	case cfg.Duration <= 0 || cfg.FloodDuration <= 0:
		return errors.New("-duration and -flood-duration must be positive")
	case cfg.Concurrency < 1 || cfg.FloodConcurrency < 1:
		return errors.New("-concurrency and -flood-concurrency must be at least 1")
	case cfg.Timeout <= 0:
		return errors.New("-timeout must be positive")
	case cfg.Users < 0 || cfg.LoginConcurrency < 0:
		return errors.New("-users and -login-concurrency must not be negative")
	case cfg.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case (cfg.ClientID == "") != (cfg.ClientSecret == ""):
		return errors.New("-client-id and -client-secret go together")
	case (cfg.Login == "") != (cfg.Password == ""):
		return errors.New("-login and -password go together")
	case cfg.LoginClientSecret != "" && cfg.Login == "":
		return errors.New("-login-client-secret needs -login: idp's public client has no secret")
	case cfg.ProfileDir != "" && cfg.DebugURL == "":
		return errors.New("-profile-dir needs -debug-url, the server's IDP_OPS_ADDR (with IDP_OPS_PROFILER=true)")
	}
	if cfg.Login != "" {
		return checkPeerScenarios(cfg.Scenarios)
	}
	return nil
}

func parseLoadArgs(args []string, getenv func(string) string, stderr io.Writer) (loadConfig, error) {
	var cfg loadConfig
	var scenarios string
	fs := flag.NewFlagSet("idp-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: idp-load [flags]          load a running idp at -url
       idp-load limits [flags]   measure this machine's RS256 and argon2id ceilings
       idp-load bench [flags]    start idp, load it, compare with the limits (make bench)
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.BaseURL, "url", "http://127.0.0.1:8080", "base URL of the server")
	fs.StringVar(&cfg.JSONPath, "json", "", "also write the report as JSON to this file")
	addLoadFlags(fs, &cfg, &scenarios, true)
	settings, err := settingsFromEnv(getenv)
	if err != nil {
		return cfg, err
	}
	var memKiB uint
	fs.IntVar(&cfg.HashConcurrency, "hash-concurrency", settings.HashConcurrency, "the server's password hashing slots, for the flood's memory budget (IDP_HASH_CONCURRENCY)")
	fs.UintVar(&memKiB, "argon2-memory-kib", uint(settings.Argon2.Memory), "the server's argon2id memory per hash, for the flood's memory budget (IDP_ARGON2_MEMORY_KIB)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.Argon2MemoryKiB = uint32(memKiB)
	return cfg, checkLoadConfig(&cfg, scenarios)
}

func cmdLimits(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idp-load limits", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := fs.Duration("duration", 3*time.Second, "how long each figure is measured (argon2id at least 2s)")
	jsonPath := fs.String("json", "", "also write the limits as JSON to this file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: idp-load limits [flags]\n\nMeasures RS256 signatures and verifications per second and argon2id hashes\nper second on all %d cores, with the key size and argon2id parameters of\nIDP_KEY_SIZE and IDP_ARGON2_* (idp's defaults when unset).\n\n", runtime.GOMAXPROCS(0))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := settingsFromEnv(getenv)
	if err != nil {
		return err
	}
	l, err := measureLimits(ctx, s, *d)
	if err != nil {
		return err
	}
	writeLimits(stdout, l)
	if *jsonPath != "" {
		return writeJSON(*jsonPath, l, createFile)
	}
	return nil
}

func writeLimits(w io.Writer, l Limits) {
	fmt.Fprintf(w, "machine limits on %d cores: RS256-%d %.0f signatures/s, %.0f verifications/s; argon2id (m=%d KiB, t=%d, p=%d) %.1f hashes/s\n",
		l.Cores, l.KeySize, l.SignPerSec, l.VerifyPerSec, l.Argon2.Memory, l.Argon2.Iterations, l.Argon2.Parallelism, l.HashesPerSec)
	if l.SignPerSecCPU > 0 {
		fmt.Fprintf(w, "  per CPU-second × %d cores: %.0f signatures/s, %.0f verifications/s, %.1f hashes/s\n",
			l.Cores, l.SignPerSecCPU, l.VerifyPerSecCPU, l.HashesPerSecCPU)
	}
}
