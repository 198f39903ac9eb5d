package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"idp/database"
	"idp/storage"
)

// benchConfig is what `idp-load bench` (and so `make bench`) runs.
type benchConfig struct {
	IDP         string // the idp binary
	Load        loadConfig
	MySQLDSN    string // a server to create a fresh database on; "" skips the MySQL run
	PostgresDSN string // the same for PostgreSQL
	// NoSQLite skips the embedded default's run, for a bench of the
	// configured servers only (scale mode takes minutes per engine).
	NoSQLite bool
	// Scale, after the bench, loads ScaleUsers users and ScaleTokens
	// token rows (scale.go) and runs the scenarios again.
	Scale                   bool
	ScaleUsers, ScaleTokens int
	SeedUsers               int // users inserted directly before the server starts, for stats
	LimitsDuration          time.Duration
	JSONPath                string
	Keep                    bool          // keep the temporary data directories
	ProfileDir              string        // profile the server per scenario and round into ProfileDir/<engine>
	IdleWait                time.Duration // how long the server idles after the load before its idle RSS is read; 0 skips that
}

// idleTargetMiB is docs/performance.md's idle resident memory target, 45 MB
// (Dex's idle figure on the same machine), in MiB as the figures are.
const idleTargetMiB = 45e6 / (1 << 20)

// settleTime is how long the bench lets a server that has just answered
// /readyz settle before reading its idle RSS.
const settleTime = 2 * time.Second

// MemoryFigures is the server's resident set when idle, from
// /proc/<pid>/status, in MiB: VmRSS, and of it RssAnon (the heap, stacks and
// other private memory; the rest is mostly the binary's pages, which the
// kernel shares and may drop).
type MemoryFigures struct {
	StartMiB     float64 `json:"start_rss_mib"`
	StartAnonMiB float64 `json:"start_anon_mib"`
	// AfterLoadMiB is read as the last scenario (the flood, when run)
	// ends, before the idle period.
	AfterLoadMiB float64 `json:"after_load_rss_mib,omitempty"`
	IdleWait     float64 `json:"idle_wait_seconds,omitempty"`
	IdleMiB      float64 `json:"idle_rss_mib,omitempty"`
	IdleAnonMiB  float64 `json:"idle_anon_mib,omitempty"`
}

// BenchReport is the JSON of `idp-load bench`.
type BenchReport struct {
	Started time.Time   `json:"started"`
	Machine machineInfo `json:"machine"`
	Runs    []EngineRun `json:"runs"`
}

type machineInfo struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu,omitempty"`
	GoVersion  string `json:"go_version"`
	Note       string `json:"note"`
}

// EngineRun is the bench of idp on one database engine.
type EngineRun struct {
	Engine      string         `json:"engine"` // sqlite or mysql
	Settings    serverSettings `json:"settings"`
	SeededUsers int            `json:"seeded_users"`
	Limits      Limits         `json:"limits"`
	Memory      *MemoryFigures `json:"memory,omitempty"`
	Load        *Report        `json:"load,omitempty"`
	Checks      []Check        `json:"checks,omitempty"`
	LoginSize   *loginSize     `json:"login_size,omitempty"`
	ScaleLoad   *scaleLoad     `json:"scale_load,omitempty"`
	Sweep       *SweepResult   `json:"sweep,omitempty"`
	ScaleRun    *Report        `json:"scale_run,omitempty"` // the scenarios again, at scale
	// ScaleFresh is the same scenarios on a fresh database, in the same
	// rounds as ScaleRun: what the rates at scale are compared with.
	ScaleFresh *Report `json:"scale_fresh,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Check is one performance target of docs/performance.md as a ratio.
type Check struct {
	Target   string  `json:"target"`
	Measured string  `json:"measured"` // what the value is made of
	Value    float64 `json:"value"`
	Against  string  `json:"against"`
	Limit    float64 `json:"limit"`
	Ratio    float64 `json:"ratio"`
	CPURatio float64 `json:"cpu_ratio,omitempty"` // the same per CPU-second; see cpu.go
	// CPURatioWithoutDB is CPURatio with the database server's CPU left
	// out (MySQL): information, not judged.
	CPURatioWithoutDB float64 `json:"cpu_ratio_without_db,omitempty"`
	Want              float64 `json:"want,omitempty"` // the ratio to reach; 0 for information only
	Result            string  `json:"result"`         // pass, FAIL, info, or n/a when not measured
}

func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var bc benchConfig
	var scenarios string
	fs := flag.NewFlagSet("idp-load bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: idp-load bench -idp path/to/idp [flags]

Starts idp serve on the embedded default (SQLite in a temporary data
directory, on a free port), seeds users, creates the confidential client
bench-svc with idp client create, measures the machine's RS256 and argon2id
limits, runs every scenario and both login floods, stops the server, and
prints the targets of docs/performance.md as ratios. Then the same on MySQL when
-mysql-dsn (IDP_TEST_MYSQL_DSN) names a server: on a fresh database, in
production mode with generated secrets.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&bc.IDP, "idp", "bin/idp", "the idp binary to run")
	fs.StringVar(&bc.MySQLDSN, "mysql-dsn", getenv("IDP_TEST_MYSQL_DSN"), "mysql://user@host:3306/prefix: also bench on MySQL, on a new database (IDP_TEST_MYSQL_DSN)")
	fs.StringVar(&bc.PostgresDSN, "postgres-dsn", getenv("IDP_TEST_POSTGRES_DSN"), "postgres://user@host:5432/prefix: also bench on PostgreSQL, on a new database (IDP_TEST_POSTGRES_DSN)")
	fs.IntVar(&bc.SeedUsers, "seed-users", 100_000, "users inserted into the database before the server starts, so that stats reads a realistic list")
	fs.DurationVar(&bc.LimitsDuration, "limits-duration", 3*time.Second, "how long each machine limit is measured, split over the rounds (argon2id at least 1s a round)")
	fs.BoolVar(&bc.NoSQLite, "no-sqlite", false, "skip the embedded default (SQLite) and bench only the configured servers (-mysql-dsn, -postgres-dsn)")
	fs.StringVar(&bc.JSONPath, "json", "", "also write the whole report as JSON to this file")
	fs.BoolVar(&bc.Keep, "keep", false, "keep the temporary data directories (server logs, SQLite database)")
	fs.StringVar(&bc.ProfileDir, "profile", "", "profile the server's CPU during each scenario and round, into DIR/<engine>/<scenario>-<round>.pprof (go tool pprof merges several); the profiler costs a little CPU")
	fs.DurationVar(&bc.IdleWait, "idle-wait", 40*time.Second, "after the load, how long the server idles before its idle RSS is read: the hasher drops its buffers after 30 s without a hash (0: not measured after the load)")
	fs.BoolVar(&bc.Scale, "scale", false, "scale mode: after the bench, load -scale-users users and -scale-tokens token rows (a fifth expired) and run the scenarios again; print each rate at scale over the rate before")
	fs.IntVar(&bc.ScaleUsers, "scale-users", 1_000_000, "users that scale mode adds")
	fs.IntVar(&bc.ScaleTokens, "scale-tokens", 5_000_000, "token rows that scale mode adds: refresh chains, access tokens, browser sessions")
	addLoadFlags(fs, &bc.Load, &scenarios, false)
	// The bench runs the flood too unless told otherwise.
	scenarios = strings.Join(append(allScenarios[:len(allScenarios):len(allScenarios)], floodScenarios...), ",")
	fs.Lookup("scenarios").DefValue = scenarios
	bc.Load.Rounds = 3
	fs.Lookup("rounds").DefValue = "3"
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkLoadConfig(&bc.Load, scenarios); err != nil {
		return err
	}
	if bc.NoSQLite && bc.MySQLDSN == "" && bc.PostgresDSN == "" {
		return errors.New("-no-sqlite leaves no engine: set -mysql-dsn or -postgres-dsn (IDP_TEST_MYSQL_DSN, IDP_TEST_POSTGRES_DSN)")
	}
	if bc.SeedUsers < 0 {
		return errors.New("-seed-users must not be negative")
	}
	if bc.IdleWait < 0 {
		return errors.New("-idle-wait must not be negative")
	}
	if bc.Scale && (bc.ScaleUsers < 1 || bc.ScaleTokens < 0) {
		return errors.New("-scale-users must be positive and -scale-tokens not negative")
	}
	idp, err := filepath.Abs(bc.IDP)
	if err != nil {
		return err
	}
	if _, err := os.Stat(idp); err != nil {
		return fmt.Errorf("-idp: %w (build it first: go build -o bin/idp ./cmd/idp)", err)
	}
	bc.IDP = idp
	if err := writeBack(idp); err != nil {
		return fmt.Errorf("-idp: %w", err)
	}
	settings, err := settingsFromEnv(getenv)
	if err != nil {
		return err
	}
	bc.Load.HashConcurrency, bc.Load.Argon2MemoryKiB = settings.HashConcurrency, settings.Argon2.Memory
	bc.Load.Log = stderr

	rep := BenchReport{Started: time.Now().UTC(), Machine: machineInfo{
		Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: cpuModel(), GoVersion: runtime.Version(),
		Note: "one run; server, load generator and limits share this machine's cores, and other jobs may too: compare ratios within a run",
	}}
	var engines []string
	if !bc.NoSQLite {
		engines = append(engines, "sqlite")
	}
	if bc.MySQLDSN != "" {
		engines = append(engines, "mysql")
	}
	if bc.PostgresDSN != "" {
		engines = append(engines, "postgres")
	}
	var failed []string
	for _, engine := range engines {
		fmt.Fprintf(stderr, "== %s ==\n", engine)
		run := benchEngine(ctx, bc, engine, settings, stderr)
		rep.Runs = append(rep.Runs, run)
		writeEngineRun(stdout, &run)
		if run.Error != "" {
			failed = append(failed, engine)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if bc.JSONPath != "" {
		if err := writeJSON(bc.JSONPath, rep, createFile); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "JSON report: %s\n", bc.JSONPath)
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench did not complete on %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

// writeBack writes the file's pages out to the disk. The server pages out
// its executable's unused pages once it listens (residency.Trim), but the
// kernel cannot drop a page not yet written back, and make bench starts
// the server seconds after building it: its idle figure then held some
// 18 MiB of the new executable that a deployed one would not.
func writeBack(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s back: %w", path, err)
	}
	return nil
}

// instance is a database prepared for the load and the environment of a
// server on it.
type instance struct {
	env                    []string
	base, dbURL            string
	clientID, clientSecret string
}

// benchEngine runs the whole bench against a fresh server on engine.
func benchEngine(ctx context.Context, bc benchConfig, engine string, settings serverSettings, log io.Writer) (run EngineRun) {
	run = EngineRun{Engine: engine, Settings: settings}
	fail := func(err error) EngineRun {
		run.Error = err.Error()
		fmt.Fprintf(log, "  %s: %v\n", engine, err)
		return run
	}
	dir, err := os.MkdirTemp("", "idp-bench-"+engine+"-")
	if err != nil {
		return fail(err)
	}
	if bc.Keep {
		fmt.Fprintf(log, "  data directory and server log: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var debugURL string
	if bc.ProfileDir != "" {
		dport, err := freePort()
		if err != nil {
			return fail(err)
		}
		debugURL = fmt.Sprintf("http://127.0.0.1:%d", dport)
	}
	var drops []func() error
	defer func() {
		for _, drop := range drops {
			if err := drop(); err != nil {
				fmt.Fprintf(log, "  %v\n", err)
			}
		}
	}()
	// prepare makes a database and the environment of a server on it, in
	// dir/sub: migrated, seeded and with the load's clients.
	prepare := func(sub, debugURL string) (*instance, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		in := &instance{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		set := map[string]string{
			"IDP_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port),
			"IDP_ISSUER":    in.base,
			"IDP_DATA_DIR":  filepath.Join(dir, sub, "data"),
			"IDP_LOG_LEVEL": "info",
			// Every request comes from one address: per-IP limits would
			// measure themselves.
			"IDP_RATE_LIMIT_PER_IP": "0",
		}
		// The operations listener only to profile, and off otherwise: its
		// default port may be another server's.
		set["IDP_OPS_ADDR"] = strings.TrimPrefix(debugURL, "http://")
		if debugURL != "" {
			set["IDP_OPS_PROFILER"] = "true"
		}
		in.dbURL = "sqlite://" + filepath.Join(dir, sub, "data", "idp.db")
		if engine != "sqlite" {
			var drop func() error
			if engine == "mysql" {
				in.dbURL, drop, err = createDatabase(ctx, "-mysql-dsn", bc.MySQLDSN, "mysql")
			} else {
				in.dbURL, drop, err = createDatabase(ctx, "-postgres-dsn", bc.PostgresDSN, "postgres", "postgresql")
			}
			if err != nil {
				return nil, err
			}
			drops = append(drops, drop)
			// Production mode: every secret configured, generated for this run.
			set["IDP_DATABASE_URL"] = in.dbURL
			set["IDP_KEY_ENCRYPTION_KEY"] = randomHex(32)
			set["IDP_REFRESH_TOKEN_SECRETS"] = randomHex(32)
			set["IDP_PICTURES_URL"] = filepath.Join(dir, sub, "pictures")
		}
		in.env = serverEnv(os.Environ(), set)
		idp := func(args ...string) ([]byte, error) {
			cmd := exec.CommandContext(ctx, bc.IDP, args...)
			cmd.Env = in.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("idp %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
			}
			return out, nil
		}
		fmt.Fprintf(log, "  idp migrate (%s)\n", database.Redact(in.dbURL))
		if _, err := idp("migrate"); err != nil {
			return nil, err
		}
		if bc.SeedUsers > 0 {
			start := time.Now()
			if err := seedUsers(ctx, in.dbURL, bc.SeedUsers); err != nil {
				return nil, fmt.Errorf("seed users: %w", err)
			}
			fmt.Fprintf(log, "  seeded %d users in %v\n", bc.SeedUsers, time.Since(start).Round(time.Millisecond))
		}
		if engine != "sqlite" {
			// Production mode has no mobile client: register the embedded
			// default's, so that both runs sign up and log in alike.
			if _, err := idp("client", "create", "--id", bc.Load.Client, "--public", "--first-party",
				"--grant-types", "password,refresh_token,authorization_code", "--scopes", "openid profile email offline_access",
				"--redirect-uri", bc.Load.RedirectURI); err != nil {
				return nil, err
			}
		}
		out, err := idp("client", "create", "--id", "bench-svc", "--grant-types", "client_credentials", "--scopes", "users:stats")
		if err != nil {
			return nil, err
		}
		var client struct {
			ID     string `json:"client_id"`
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal(out, &client); err != nil || client.Secret == "" {
			return nil, fmt.Errorf("idp client create printed %q, want a JSON object with client_secret", out)
		}
		in.clientID, in.clientSecret = client.ID, client.Secret
		return in, nil
	}
	primary, err := prepare("", debugURL)
	if err != nil {
		return fail(err)
	}
	run.SeededUsers = bc.SeedUsers
	env, dbURL, base := primary.env, primary.dbURL, primary.base
	meter, err := newLimitMeter(settings)
	if err != nil {
		return fail(fmt.Errorf("limits: %w", err))
	}
	runtime.GC()

	srv, err := startServer(ctx, bc.IDP, env, filepath.Join(dir, "idp.log"), base)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	fmt.Fprintf(log, "  idp serve pid %d at %s\n", srv.cmd.Process.Pid, base)
	pid := srv.cmd.Process.Pid
	if !sleep(ctx, settleTime) {
		return fail(ctx.Err())
	}
	st, err := readProcStatus(pid)
	if err != nil {
		return fail(fmt.Errorf("idle memory: %w", err))
	}
	run.Memory = &MemoryFigures{StartMiB: mib(st.rssKiB), StartAnonMiB: mib(st.anonKiB)}
	fmt.Fprintf(log, "  idle RSS after start-up: %.1f MiB (%.1f MiB anonymous)\n", run.Memory.StartMiB, run.Memory.StartAnonMiB)

	cfg := bc.Load
	cfg.BaseURL, cfg.ClientID, cfg.ClientSecret, cfg.PID = base, primary.clientID, primary.clientSecret, srv.cmd.Process.Pid
	cfg.IdleRSSMiB = run.Memory.StartMiB
	if debugURL != "" {
		cfg.DebugURL, cfg.ProfileDir = debugURL, filepath.Join(bc.ProfileDir, engine)
		fmt.Fprintf(log, "  profiling the server into %s\n", cfg.ProfileDir)
	}
	if engine != "sqlite" {
		// The database's work is the server's too. Other jobs' queries
		// to the same database server are counted with it.
		if cfg.DBPID = findDatabasePID(engine); cfg.DBPID != 0 {
			fmt.Fprintf(log, "  counting the CPU time of the database server, pid %d, as the server's\n", cfg.DBPID)
		}
	}
	// The limits are measured in this process before each round of
	// scenarios, while the server idles: over the same minutes as the
	// figures they are compared with.
	cfg.BeforeRound = func(ctx context.Context, round int) error {
		fmt.Fprintf(log, "  round %d of %d: machine limits (%v each)\n", round+1, cfg.Rounds, bc.LimitsDuration/time.Duration(cfg.Rounds))
		return meter.measure(ctx, bc.LimitsDuration/time.Duration(cfg.Rounds))
	}
	rep, err := runLoad(ctx, cfg)
	run.Limits = meter.limits()
	if err != nil {
		return fail(fmt.Errorf("load: %w (server log: %s)", err, srv.logTail()))
	}
	run.Load = rep
	// After the refresh scenario and the logins after it: what a live
	// login costs the database.
	if ls, err := measureLoginSize(ctx, dbURL); err != nil {
		fmt.Fprintf(log, "  size per live login: %v\n", err)
	} else {
		run.LoginSize = ls
	}
	if st, err := readProcStatus(pid); err == nil {
		run.Memory.AfterLoadMiB = mib(st.rssKiB)
	}
	if bc.IdleWait > 0 {
		fmt.Fprintf(log, "  idle RSS after the load: %.1f MiB; idling %v\n", run.Memory.AfterLoadMiB, bc.IdleWait)
		if !sleep(ctx, bc.IdleWait) {
			return fail(ctx.Err())
		}
		st, err := readProcStatus(pid)
		if err != nil {
			return fail(fmt.Errorf("idle memory: %w", err))
		}
		run.Memory.IdleWait, run.Memory.IdleMiB, run.Memory.IdleAnonMiB = bc.IdleWait.Seconds(), mib(st.rssKiB), mib(st.anonKiB)
	}
	run.Checks = append(checks(rep, run.Limits, run.SeededUsers), idleCheck(run.Memory))
	if run.LoginSize != nil {
		run.Checks = append(run.Checks, loginSizeCheck(run.LoginSize))
	}
	if err := srv.stop(); err != nil {
		fmt.Fprintf(log, "  stopping idp: %v\n", err)
	}
	if !bc.Scale {
		return run
	}
	fmt.Fprintf(log, "  scale: loading %d users and %d token rows\n", bc.ScaleUsers, bc.ScaleTokens)
	load, err := loadScale(ctx, dbURL, scaleSpec{Users: bc.ScaleUsers, Tokens: bc.ScaleTokens, ExpiredShare: 0.2,
		Client: bc.Load.Client, Now: time.Now().UTC(), Salt: uint32(time.Now().UnixNano())}, log)
	if err != nil {
		return fail(fmt.Errorf("scale load: %w", err))
	}
	run.ScaleLoad = load
	fmt.Fprintf(log, "  scale: loaded in %.1f s (%.0f rows/s)\n", load.Seconds, load.RowsPerSec)
	// The rates at scale are compared with a server on a fresh database,
	// prepared as the first one was, loaded in the same rounds: the
	// machine's speed drifts over the minutes between the first pass and
	// this one, and interleaving cancels it.
	ref, err := prepare("fresh", "")
	if err != nil {
		return fail(fmt.Errorf("fresh database: %w", err))
	}
	// The sweep would delete the expired share while the scenarios run.
	refSrv, err := startServer(ctx, bc.IDP, append(ref.env, "IDP_SWEEP_INTERVAL=1000h"), filepath.Join(dir, "idp-fresh.log"), ref.base)
	if err != nil {
		return fail(err)
	}
	defer refSrv.stop()
	srv, err = startServer(ctx, bc.IDP, append(env, "IDP_SWEEP_INTERVAL=1000h"), filepath.Join(dir, "idp-scale.log"), base)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	if !sleep(ctx, settleTime) {
		return fail(ctx.Err())
	}
	scfg := cfg
	scfg.PID, scfg.BeforeRound, scfg.DebugURL, scfg.ProfileDir = srv.cmd.Process.Pid, nil, "", ""
	scfg.Scenarios = slices.DeleteFunc(slices.Clone(cfg.Scenarios), func(s string) bool { return slices.Contains(floodScenarios, s) })
	rcfg := scfg
	rcfg.BaseURL, rcfg.ClientID, rcfg.ClientSecret, rcfg.PID = ref.base, ref.clientID, ref.clientSecret, refSrv.cmd.Process.Pid
	fmt.Fprintf(log, "  scale: the scenarios at scale (server 2) interleaved with a fresh database (server 1)\n")
	reps, err := runLoads(ctx, rcfg, scfg)
	if err != nil {
		return fail(fmt.Errorf("scale load run: %w (server logs: %s; %s)", err, refSrv.logTail(), srv.logTail()))
	}
	fresh, srep := reps[0], reps[1]
	run.ScaleFresh, run.ScaleRun = fresh, srep
	if err := refSrv.stop(); err != nil {
		fmt.Fprintf(log, "  stopping idp: %v\n", err)
	}
	// The users stats lists in each run: the seeded ones and each run's
	// own, and at scale also the first run's users and signups and the
	// scale load's.
	usersBefore := run.SeededUsers + fresh.Users
	usersAt := run.SeededUsers + rep.Users + srep.Users + bc.ScaleUsers
	if su := rep.Scenario("signup"); su != nil {
		usersAt += su.OK
	}
	run.Checks = append(run.Checks, scaleChecks(fresh, srep, usersBefore, usersAt)...)
	if err := srv.stop(); err != nil {
		fmt.Fprintf(log, "  stopping idp: %v\n", err)
	}
	// The sweep under load: a server whose first pass runs 20 s after its
	// start, loaded with userinfo before and during the pass.
	sweepLog := filepath.Join(dir, "idp-sweep.log")
	srv, err = startServer(ctx, bc.IDP, append(env, "IDP_SWEEP_INTERVAL=20s"), sweepLog, base)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	fmt.Fprintf(log, "  sweep: userinfo until the server's first sweep pass (20 s after its start) is logged\n")
	scfg.PID = srv.cmd.Process.Pid
	sw, err := measureSweep(ctx, scfg, sweepLog, 15*time.Minute)
	if sw != nil {
		run.Sweep = sw
	}
	if err != nil {
		return fail(fmt.Errorf("sweep: %w", err))
	}
	run.Checks = append(run.Checks, sweepCheck(sw))
	if err := srv.stop(); err != nil {
		fmt.Fprintf(log, "  stopping idp: %v\n", err)
	}
	return run
}

// scaleScenarios are the scenarios whose rate at scale is judged against
// their rate on the fresh database.
var scaleScenarios = []string{"userinfo", "profile", "refresh", "password", "authorize", "stats"}

// scaleChecks compares each of scaleScenarios' rate at scale with its rate
// on the fresh database: want ≥ 0.9, judged per CPU-second when either run
// was noisy.
//
// stats is judged per user id served: its answer is, by the contract, every
// user id, so a call at scale does usersAt/usersBefore times the work of one
// before, and flat means the same cost per id (the same rate of ids/s).
func scaleChecks(before, at *Report, usersBefore, usersAt int) []Check {
	noisy := before.OthersShare > noisyShare || at.OthersShare > noisyShare
	var out []Check
	for _, name := range scaleScenarios {
		b, a := before.Scenario(name), at.Scenario(name)
		c := Check{Target: "scale " + name, Against: "ok/s on the fresh database", Want: 0.9}
		work := 1.0 // what a call at scale does, in calls before
		if name == "stats" && usersBefore > 0 && usersAt > 0 {
			work = float64(usersAt) / float64(usersBefore)
			c.Against = fmt.Sprintf("user ids/s on the fresh database (%d ids a call, %d at scale)", usersBefore, usersAt)
		}
		if b == nil || a == nil || b.Skipped != "" || a.Skipped != "" || b.OKRate <= 0 {
			if b == nil && a == nil {
				continue
			}
			c.Result, c.Measured = "n/a", "not measured"
			out = append(out, c)
			continue
		}
		c.Value, c.Limit, c.Ratio = a.OKRate, b.OKRate, a.OKRate*work/b.OKRate
		c.Measured = fmt.Sprintf("%.1f ok/s at scale (p99 %.1f ms, before %.1f ms)", a.OKRate, a.P99Ms, b.P99Ms)
		if work != 1 {
			c.Measured = fmt.Sprintf("%.2f calls/s at scale, %.0f user ids/s against %.0f (p99 %.1f ms, before %.1f ms)",
				a.OKRate, a.OKRate*float64(usersAt), b.OKRate*float64(usersBefore), a.P99Ms, b.P99Ms)
		}
		if a.CPURate > 0 && b.CPURate > 0 {
			c.CPURatio = a.CPURate * work / b.CPURate
		}
		ratio, suffix := c.Ratio, ""
		if noisy && c.CPURatio > 0 {
			ratio, suffix = c.CPURatio, " (cpu)"
		}
		c.Result = map[bool]string{true: "pass", false: "FAIL"}[ratio >= c.Want] + suffix
		out = append(out, c)
	}
	return out
}

// serverEnv returns base without IDP_… variables other than those that
// shape what the bench measures (key size, argon2id, hashing slots), plus
// set.
func serverEnv(base []string, set map[string]string) []string {
	keep := map[string]bool{
		"IDP_KEY_SIZE": true, "IDP_ARGON2_MEMORY_KIB": true, "IDP_ARGON2_ITERATIONS": true,
		"IDP_ARGON2_PARALLELISM": true, "IDP_HASH_CONCURRENCY": true, "IDP_HASH_QUEUE_TIMEOUT": true,
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, overridden := set[k]; overridden || (strings.HasPrefix(k, "IDP_") && !keep[k]) {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// server is a running `idp serve`.
type server struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
	stopped bool
}

// startServer starts idp serve with env, its log in logPath, and waits until
// base/readyz answers 200.
func startServer(ctx context.Context, idp string, env []string, logPath, base string) (*server, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(idp, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("idp serve exited: %v: %s", s.waitErr, s.logTail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("idp serve not ready after 60s: %s", s.logTail())
		}
	}
}

// stop sends SIGTERM and waits for the graceful shutdown, killing the
// server after 30 s.
func (s *server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("idp serve did not stop within 30s of SIGTERM; killed")
	}
	var exit *exec.ExitError
	if errors.As(s.waitErr, &exit) {
		return fmt.Errorf("idp serve: %v", s.waitErr)
	}
	return nil
}

// logTail is the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// createDatabase creates a new database on the server named by dsn
// (mysql:// or postgres://user:password@host:port/prefix, as flag says),
// named after the URL's database with a random suffix, and returns its URL
// and a func that drops it.
func createDatabase(ctx context.Context, flag, dsn string, schemes ...string) (string, func() error, error) {
	u, err := url.Parse(dsn)
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		return "", nil, fmt.Errorf("%s: %q is not a %s:// URL", flag, dsn, schemes[0])
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix == "" {
		prefix = "idp"
	}
	return database.CreateDatabase(ctx, dsn, prefix+"_bench_"+randomHex(4))
}

// seedUsers adds n users with ids 1..n, so that the stats scenario reads
// a list of realistic length. Their password hash is not a hash: nobody
// logs in as them.
func seedUsers(ctx context.Context, dbURL string, n int) error {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	genders := []storage.Gender{storage.GenderFemale, storage.GenderMale, storage.GenderFemale, storage.GenderUnspecified, storage.GenderMale}
	now := time.Now().UTC()
	_, err = storage.New(db).LoadUsers(ctx, scaleRows(n, func(i int) storage.User {
		id := i + 1
		name := "seed" + strconv.Itoa(id)
		return storage.User{ID: int64(id), Username: name, Email: name + "@example.com", PasswordHash: "x",
			FirstName: "Seed", LastName: "User", Gender: genders[id%len(genders)],
			CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
	}))
	return err
}

// noisyShare is the share of the machine's CPU that other processes may
// take while the scenarios run before the wall-clock ratios are no longer
// trusted: a contended machine shares its cores by runnable threads, so the
// limits (measured by one process) and the scenarios (server and load
// generator together) lose different shares of it.
const noisyShare = 0.2

// checks turns a load report and the machine's limits into the targets of
// docs/performance.md. The result is judged on the wall-clock ratio, as the
// targets say,
// unless other processes took more than noisyShare of the machine: then on
// CPURatio, the same ratio per CPU-second (see cpu.go), marked "(cpu)".
func checks(rep *Report, l Limits, seeded int) []Check {
	noisy := rep.OthersShare > noisyShare
	var out []Check
	// A rate three ways: wall-clock, per CPU-second, and per CPU-second
	// without the database server's (0 when it was not counted apart).
	type rate struct{ wall, cpu, cpuNoDB float64 }
	scale := func(r rate, f float64) rate { return rate{r.wall * f, r.cpu * f, r.cpuNoDB * f} }
	rates := func(name string) (rate, bool) {
		s := rep.Scenario(name)
		if s == nil || s.Skipped != "" {
			return rate{}, false
		}
		return rate{s.OKRate, s.CPURate, s.CPURateWithoutDB}, true
	}
	signing := rate{l.SignPerSec, l.SignPerSecCPU, l.SignPerSecCPU}
	hashing := rate{l.HashesPerSec, l.HashesPerSecCPU, l.HashesPerSecCPU}
	add := func(target, measured string, value rate, against string, limit rate, want float64, ok bool) {
		c := Check{Target: target, Measured: measured, Value: value.wall, Against: against, Limit: limit.wall, Want: want}
		switch {
		case !ok || limit.wall <= 0:
			c.Result, c.Measured = "n/a", "not measured"
		default:
			c.Ratio = value.wall / limit.wall
			if value.cpu > 0 && limit.cpu > 0 {
				c.CPURatio = value.cpu / limit.cpu
			}
			if value.cpuNoDB > 0 && limit.cpuNoDB > 0 {
				c.CPURatioWithoutDB = value.cpuNoDB / limit.cpuNoDB
			}
			ratio, suffix := c.Ratio, ""
			if noisy && c.CPURatio > 0 {
				ratio, suffix = c.CPURatio, " (cpu)"
			}
			switch {
			case want == 0:
				c.Result = "info"
			case ratio >= want:
				c.Result = "pass" + suffix
			default:
				c.Result = "FAIL" + suffix
			}
		}
		out = append(out, c)
	}
	if r, ok := rates("refresh"); ok {
		sigs := float64(max(rep.SignaturesPerRefresh, 1))
		add("refresh", fmt.Sprintf("%.1f grants/s × %d signatures (access token%s)", r.wall, int(sigs),
			map[bool]string{true: " + ID token", false: ""}[sigs > 1]),
			scale(r, sigs), "RS256 signatures/s", signing, 0.8, true)
	} else {
		add("refresh", "not run", rate{}, "RS256 signatures/s", rate{wall: l.SignPerSec}, 0.8, false)
	}
	// Throughput that holds as concurrent chains rise: refresh (16 chains
	// by default) against refresh2 (2), within run-to-run noise.
	r16, ok16 := rates("refresh")
	r2, ok2 := rates("refresh2")
	add("refresh 2→16 chains", fmt.Sprintf("%.1f grants/s on %d chains", r16.wall, rep.Concurrency),
		r16, "grants/s on 2 chains", r2, 0.9, ok16 && ok2)
	if r, ok := rates("authorize"); ok {
		// Information, beside refresh: a code redemption signs the
		// access token and the ID token, so signatures/s ÷ 2 is the
		// ceiling of authorize → code → token.
		sigs := float64(max(rep.SignaturesPerCode, 1))
		add("authorize", fmt.Sprintf("%.1f codes/s × %d signatures (access token%s), authorize → code → token with prompt=none", r.wall, int(sigs),
			map[bool]string{true: " + ID token", false: ""}[sigs > 1]),
			scale(r, sigs), "RS256 signatures/s", signing, 0, true)
	}
	for _, name := range []string{"password", "signup"} {
		r, ok := rates(name)
		add(name, fmt.Sprintf("%.1f /s", r.wall), r, "argon2id hashes/s", hashing, 0.8, ok)
	}
	if r, ok := rates("loginpage"); ok {
		add("loginpage", fmt.Sprintf("%.1f POST /login 303s/s", r.wall), r, "argon2id hashes/s", hashing, 0, true)
	}
	health, hok := rates("healthz")
	if health.cpuNoDB == 0 {
		// healthz asks nothing of the database: the same rate either way.
		health.cpuNoDB = health.cpu
	}
	for _, t := range []struct {
		name string
		want float64
	}{{"jwks", 0.8}, {"discovery", 0.8}, {"userinfo", 0.3}, {"profile", 0.3}} {
		r, ok := rates(t.name)
		add(t.name, fmt.Sprintf("%.0f /s", r.wall), r, "healthz /s", health, t.want, ok && hok)
	}
	if r, ok := rates("client_credentials"); ok {
		add("client_credentials", fmt.Sprintf("%.1f grants/s × 1 signature", r.wall), r, "RS256 signatures/s", signing, 0, true)
	}
	if s := rep.Scenario("stats"); s != nil && s.Skipped == "" && s.OKRate > 0 {
		// No ratio target: the 1M-user target (under 2 s, under 32 MiB of
		// heap) is BenchmarkStats1M's. This is the machine time one call
		// takes, scaled linearly to a million users.
		users := seeded + rep.Users
		perCall := 1 / s.OKRate
		out = append(out, Check{Target: "stats", Result: "info", Value: s.OKRate, Against: "time per call",
			Measured: fmt.Sprintf("%.1f calls/s over ~%d users: %.0f ms of machine time per call, ~%.1f s scaled to 1M users (BenchmarkStats1M measures it)",
				s.OKRate, users, perCall*1000, perCall*1e6/float64(max(users, 1)))})
	}
	for _, f := range []*FloodResult{rep.Flood, rep.LoginFlood, rep.PictureFlood} {
		if f != nil && f.Skipped == "" {
			out = append(out, floodCheck(f))
		}
	}
	return out
}

// floodCheck judges a flood: the peak RSS against its budget, and only
// overload answers among the failures.
func floodCheck(f *FloodResult) Check {
	overload, ok := "503 temporarily_unavailable", "ok"
	switch f.Name {
	case loginFloodScenario:
		overload, ok = "503", "303"
	case pictureFloodScenario:
		overload, ok = "503 busy", "201"
	}
	c := Check{Target: f.Name, Against: "RSS budget MiB", Limit: f.BudgetMiB, Value: f.PeakRSSMiB, Want: 1,
		Measured: fmt.Sprintf("%d workers: %d %s, %d×%s, %d other failures; peak RSS %.0f MiB",
			f.Concurrency, f.OK, ok, f.Failed503, overload, f.OtherFailures, f.PeakRSSMiB)}
	if f.BudgetMiB > 0 {
		c.Ratio = f.PeakRSSMiB / f.BudgetMiB
	}
	c.Result = map[bool]string{true: "pass", false: "FAIL"}[f.Pass]
	return c
}

// idleCheck judges the idle resident set, after start-up and after the
// idle period that follows the load, against idleTargetMiB.
func idleCheck(m *MemoryFigures) Check {
	c := Check{Target: "idle memory", Against: "RSS MiB (45 MB)", Limit: idleTargetMiB, Want: 1,
		Value: max(m.StartMiB, m.IdleMiB)}
	c.Measured = fmt.Sprintf("RSS %.1f MiB after start-up (%.1f anonymous)", m.StartMiB, m.StartAnonMiB)
	if m.AfterLoadMiB > 0 {
		c.Measured += fmt.Sprintf(", %.1f at the end of the load", m.AfterLoadMiB)
	}
	if m.IdleWait > 0 {
		c.Measured += fmt.Sprintf(", %.1f (%.1f anonymous) after %.0f s idle", m.IdleMiB, m.IdleAnonMiB, m.IdleWait)
	} else {
		c.Measured += "; not measured after the load (-idle-wait 0)"
	}
	c.Ratio = c.Value / c.Limit
	c.Result = map[bool]string{true: "pass", false: "FAIL"}[c.Ratio <= 1]
	return c
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// sleep waits d, or until ctx ends (then false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeEngineRun prints one engine's limits, scenario table and targets.
func writeEngineRun(w io.Writer, run *EngineRun) {
	fmt.Fprintf(w, "\n== %s", run.Engine)
	if run.Engine == "sqlite" {
		fmt.Fprint(w, ": embedded default (SQLite in a temporary data directory)")
	} else {
		fmt.Fprint(w, ": production mode on a fresh "+map[string]string{"mysql": "MySQL/MariaDB", "postgres": "PostgreSQL"}[run.Engine]+" database")
	}
	fmt.Fprintf(w, ", %d users seeded ==\n", run.SeededUsers)
	if run.Limits.SignPerSec > 0 {
		writeLimits(w, run.Limits)
	}
	if run.Load != nil {
		writeTable(w, run.Load)
	}
	if l := run.ScaleLoad; l != nil {
		fmt.Fprintf(w, "\nscale: loaded %d users, %d refresh chain, %d access token and %d browser session rows in %.1f s (%.0f rows/s); the scenarios again, interleaved with a fresh database:\n",
			l.Rows["users"], l.Rows["refresh_chains"], l.Rows["access_tokens"], l.Rows["browser_sessions"], l.Seconds, l.RowsPerSec)
		if l.Cache != nil {
			fmt.Fprintf(w, "  %s\n", l.Cache)
		}
	}
	if run.ScaleFresh != nil {
		fmt.Fprintln(w, "  on the fresh database:")
		writeTable(w, run.ScaleFresh)
	}
	if run.ScaleRun != nil {
		if run.ScaleFresh != nil {
			fmt.Fprintln(w, "  at scale:")
		}
		writeTable(w, run.ScaleRun)
	}
	if len(run.Checks) > 0 {
		fmt.Fprintln(w)
		if run.Load != nil && run.Load.OthersShare > noisyShare {
			fmt.Fprintf(w, "other processes took %.0f%% of the CPU (over %.0f%%): results are judged on the cpu ratios\n",
				100*run.Load.OthersShare, 100*noisyShare)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "target\tratio\twant\tresult\tcpu ratio\twithout db\tmeasured\tagainst")
		for _, c := range run.Checks {
			ratio, want, cpuRatio, noDB := "-", "-", "-", "-"
			if c.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", c.Ratio)
			}
			if c.CPURatio > 0 {
				cpuRatio = fmt.Sprintf("%.2f", c.CPURatio)
			}
			if c.CPURatioWithoutDB > 0 {
				noDB = fmt.Sprintf("%.2f", c.CPURatioWithoutDB)
			}
			if c.Want > 0 {
				want = fmt.Sprintf("≥ %.1f", c.Want)
				if c.Target == floodScenario || c.Target == loginFloodScenario || c.Target == pictureFloodScenario || c.Target == "idle memory" {
					want = "≤ 1.0"
				}
				if c.Target == "sweep p99" {
					want = "≤ 2.0"
				}
			}
			against := c.Against
			if c.Limit > 0 {
				against = fmt.Sprintf("%s %.1f", c.Against, c.Limit)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Target, ratio, want, c.Result, cpuRatio, noDB, c.Measured, against)
		}
		tw.Flush()
	}
	if run.Error != "" {
		fmt.Fprintf(w, "error: %s\n", run.Error)
	}
}

// cpuModel is the processor's name from /proc/cpuinfo, when there is one.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loginSizeCheck is the database's size per live login: information. The
// size includes every user's row, most of them seeded without a login.
func loginSizeCheck(ls *loginSize) Check {
	c := Check{Target: "size per login", Against: "bytes per live login", Result: "info",
		Measured: fmt.Sprintf("%.1f MiB of database (%d users) over %d live refresh chains", float64(ls.Bytes)/(1<<20), ls.Users, ls.LiveChains)}
	if ls.LiveChains > 0 {
		c.Value = float64(ls.Bytes) / float64(ls.LiveChains)
		c.Measured = fmt.Sprintf("%.0f bytes per live login: ", c.Value) + c.Measured
	}
	return c
}
