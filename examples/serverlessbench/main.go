// Command serverlessbench sets up and drives the serverless measurements
// of examples/SERVERLESS.md on one machine, with no cloud account:
//
//	serverlessbench serve -dir DIR [-events N]
//
// starts an OAuth server (package oauthtest), a fake provider API, a fake
// AWS Lambda Runtime API and a GCP Secret Manager emulator (gcpsmtest),
// logs a user in on Secrets Manager (CLOUDTOKENS_AWS_ENDPOINT: moto_server
// or LocalStack) and on the emulator, stores the same access token as a
// plain secret for the bare baselines, and writes DIR/lambda.env,
// DIR/barelambda.env, DIR/cloudrun.env and DIR/barecloudrun.env:
// KEY=VALUE lines to run each binary with (env $(cat DIR/lambda.env)
// ./bootstrap). It runs until interrupted.
//
// The fake Runtime API hands each process N events (-events, default 1)
// and then answers the next poll with HTTP 500, which makes aws-lambda-go
// exit: a Lambda bootstrap run under it lives from exec to its N-th
// answer. POST /bench/events?n=N on it changes N; GET /bench/stats
// reports the answers seen (ok: HTTP status 200 from the API).
//
//	serverlessbench http -env FILE [-requests N] -- CMD [ARG...]
//
// runs an HTTP service (the Cloud Run example or its baseline) with the
// variables of FILE and a free PORT, sends it N POST / requests (default
// 1) as soon as it accepts connections, checks each answer, prints the
// time from exec to the first answer and the process's resident memory
// after the last one (VmRSS, VmHWM) to stderr, and stops it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

const user = "alice@example.com"

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: serverlessbench serve -dir DIR [-events N] | http -env FILE [-requests N] -- CMD [ARG...]")
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "http":
		err = drive(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the env files (required)")
	events := fs.Int("events", 1, "events per Lambda process")
	fs.Parse(args)
	if *dir == "" || os.Getenv("CLOUDTOKENS_AWS_ENDPOINT") == "" {
		return fmt.Errorf("serve needs -dir and CLOUDTOKENS_AWS_ENDPOINT")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	provider := oauthtest.NewServer(oauthtest.WithLimit(0, 0))
	defer provider.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, ok := provider.AccessTokenUser(tok); !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"INVALID_OAUTHTOKEN"}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer api.Close()
	rt := newRuntime(*events)
	rtSrv := httptest.NewServer(rt)
	defer rtSrv.Close()
	emulator, err := gcpsmtest.New()
	if err != nil {
		return err
	}
	defer emulator.Close()
	cfg := tokensource.Config{TokenURL: provider.TokenURL, ClientID: provider.ClientID(), ClientSecret: provider.ClientSecret()}

	// AWS: the token store and the bare secret.
	awsEnv := []string{"AWS_ENDPOINT_URL=" + os.Getenv("CLOUDTOKENS_AWS_ENDPOINT"), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(rtSrv.URL, "http://")}
	sm, err := awsClient(ctx)
	if err != nil {
		return err
	}
	prefix := "serverlessbench/" + randomHex()
	store, err := awssm.New(ctx, sm, prefix, awssm.WithForceDelete())
	if err != nil {
		return err
	}
	access, err := login(ctx, store, cfg, provider)
	if err != nil {
		return err
	}
	defer store.DeleteTokens(context.WithoutCancel(ctx))
	bareID := prefix + "-bare"
	secret, _ := json.Marshal(map[string]string{"access_token": access})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(bareID), SecretString: aws.String(string(secret))}); err != nil {
		return err
	}
	defer sm.DeleteSecret(context.WithoutCancel(ctx), &secretsmanager.DeleteSecretInput{SecretId: aws.String(bareID), ForceDeleteWithoutRecovery: aws.Bool(true)})

	// GCP: the token store and the bare secret on the emulator.
	const project = "serverlessbench"
	gc, err := secretmanager.NewClient(ctx, emulator.ClientOptions()...)
	if err != nil {
		return err
	}
	defer gc.Close()
	gstore, err := gcpsm.New(ctx, gc, project, "tokens")
	if err != nil {
		return err
	}
	gaccess, err := login(ctx, gstore, cfg, provider)
	if err != nil {
		return err
	}
	gsecret, _ := json.Marshal(map[string]string{"access_token": gaccess})
	if _, err := gc.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: "bare-token",
		Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}}}); err != nil {
		return err
	}
	if _, err := gc.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/" + project + "/secrets/bare-token",
		Payload: &secretmanagerpb.SecretPayload{Data: gsecret}}); err != nil {
		return err
	}

	apiURL := api.URL + "/crm/v8/users"
	files := map[string][]string{
		"lambda.env":       append(awsEnv, "CLOUDTOKENS_PREFIX="+prefix, "OAUTH_TOKEN_URL="+provider.TokenURL, "API_URL="+apiURL),
		"barelambda.env":   append(awsEnv, "SECRET_ID="+bareID, "API_URL="+apiURL),
		"cloudrun.env":     {"CLOUDTOKENS_GCP_ENDPOINT=" + emulator.Addr(), "GOOGLE_CLOUD_PROJECT=" + project, "CLOUDTOKENS_PREFIX=tokens", "OAUTH_TOKEN_URL=" + provider.TokenURL, "API_URL=" + apiURL},
		"barecloudrun.env": {"CLOUDTOKENS_GCP_ENDPOINT=" + emulator.Addr(), "SECRET=projects/" + project + "/secrets/bare-token/versions/latest", "API_URL=" + apiURL},
	}
	for name, lines := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(*dir, "runtime.url"), []byte(rtSrv.URL+"\n"), 0o600); err != nil {
		return err
	}
	log.Printf("serverlessbench: env files in %s; Runtime API %s; interrupt to stop", *dir, rtSrv.URL)
	<-ctx.Done()
	log.Printf("serverlessbench: %s", rt.stats())
	return nil
}

// login exchanges a grant code for user and saves the token in store.
func login(ctx context.Context, store tokenstore.Store, cfg tokensource.Config, provider *oauthtest.Server) (string, error) {
	src, err := tokensource.New(store, &tokenstore.Token{UserName: user, GrantToken: provider.IssueGrant(user)}, cfg)
	if err != nil {
		return "", err
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func awsClient(ctx context.Context) (*secretsmanager.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		return nil, err
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("CLOUDTOKENS_AWS_ENDPOINT"))
	}), nil
}

// runtime is a fake AWS Lambda Runtime API (the 2018-06-01 interface that
// aws-lambda-go polls): it hands out `events` events per process, then
// answers the next poll with HTTP 500 so that the process exits.
type runtime struct {
	mu                    sync.Mutex
	events, given, nextID int
	ok, failed            int
}

func newRuntime(events int) *runtime { return &runtime{events: events} }

func (rt *runtime) stats() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return fmt.Sprintf(`{"events_per_process":%d,"ok":%d,"failed":%d}`, rt.events, rt.ok, rt.failed)
}

func (rt *runtime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const base = "/2018-06-01/runtime/"
	switch {
	case r.URL.Path == "/bench/stats":
		_, _ = w.Write([]byte(rt.stats()))
	case r.URL.Path == "/bench/events" && r.Method == http.MethodPost:
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 {
			http.Error(w, "n", http.StatusBadRequest)
			return
		}
		rt.mu.Lock()
		rt.events, rt.given = n, 0
		rt.mu.Unlock()
	case r.URL.Path == base+"invocation/next":
		rt.mu.Lock()
		if rt.given == rt.events {
			rt.given = 0 // this process is done; the next one starts afresh
			rt.mu.Unlock()
			http.Error(w, "no more events for this process", http.StatusInternalServerError)
			return
		}
		rt.given++
		rt.nextID++
		id := strconv.Itoa(rt.nextID)
		rt.mu.Unlock()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
		_, _ = w.Write([]byte(`{"user_name":"` + user + `"}`))
	case strings.HasPrefix(r.URL.Path, base+"invocation/") && strings.HasSuffix(r.URL.Path, "/response"):
		var resp struct {
			Status int `json:"status"`
		}
		err := json.NewDecoder(r.Body).Decode(&resp)
		rt.mu.Lock()
		if err == nil && resp.Status == http.StatusOK {
			rt.ok++
		} else {
			rt.failed++
		}
		rt.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case strings.HasSuffix(r.URL.Path, "/error"):
		rt.mu.Lock()
		rt.failed++
		rt.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

// drive runs an HTTP service and measures exec to first answer.
func drive(args []string) error {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	envFile := fs.String("env", "", "KEY=VALUE file (required)")
	requests := fs.Int("requests", 1, "requests to send")
	fs.Parse(args)
	if *envFile == "" || fs.NArg() == 0 {
		return fmt.Errorf("http needs -env FILE and a command")
	}
	b, err := os.ReadFile(*envFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Env = append(append(os.Environ(), strings.Fields(string(b))...), "PORT="+port)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	url := "http://127.0.0.1:" + port + "/"
	var first time.Duration
	for i := 0; i < *requests; i++ {
		for {
			resp, err := http.Post(url, "application/json", strings.NewReader(`{"user_name":"`+user+`"}`))
			if err != nil {
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("the service did not answer within 30 s: %w", err)
				}
				time.Sleep(time.Millisecond)
				continue
			}
			var out struct {
				Status int `json:"status"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || out.Status != http.StatusOK {
				return fmt.Errorf("request %d: HTTP %d, API status %d, %v", i+1, resp.StatusCode, out.Status, err)
			}
			break
		}
		if i == 0 {
			first = time.Since(start)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	var mem []string
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			mem = append(mem, strings.Join(strings.Fields(line), " "))
		}
	}
	fmt.Fprintf(os.Stderr, "first answer %v after exec; after %d requests %s\n", first.Round(100*time.Microsecond), *requests, strings.Join(mem, ", "))
	return nil
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
