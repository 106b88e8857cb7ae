package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// startPrivateMoto starts a moto_server of this test's own, on a free
// port, for tests that change server-wide settings (IAM enforcement) and
// so cannot use the shared server. It stops it when the test ends.
func startPrivateMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if backend.InCI() {
			t.Fatalf("CI=true: moto_server is not on PATH: %v", err)
		}
		t.Skipf("moto_server is not on PATH: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(ep + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return ep
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// iamCall sends one signed IAM Query API request to moto.
func iamCall(t *testing.T, ep string, params url.Values, out any) {
	t.Helper()
	params.Set("Version", "2010-05-08")
	body := params.Encode()
	req, err := http.NewRequest(http.MethodPost, ep+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hex.EncodeToString(sum[:]), "iam", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("IAM %s: %s\n%s", params.Get("Action"), resp.Status, b)
	}
	if out != nil {
		if err := xml.Unmarshal(b, out); err != nil {
			t.Fatalf("IAM %s: %v", params.Get("Action"), err)
		}
	}
}

// iamUser creates a user with an inline policy allowing actions on every
// resource, and returns its access key.
func iamUser(t *testing.T, ep, name string, actions []string) aws.Credentials {
	t.Helper()
	iamCall(t, ep, url.Values{"Action": {"CreateUser"}, "UserName": {name}}, nil)
	policy, _ := json.Marshal(map[string]any{
		"Version":   "2012-10-17",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": actions, "Resource": "*"}},
	})
	iamCall(t, ep, url.Values{"Action": {"PutUserPolicy"}, "UserName": {name}, "PolicyName": {"cloudtokens"}, "PolicyDocument": {string(policy)}}, nil)
	var key struct {
		ID     string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	iamCall(t, ep, url.Values{"Action": {"CreateAccessKey"}, "UserName": {name}}, &key)
	if key.ID == "" || key.Secret == "" {
		t.Fatal("CreateAccessKey returned no key")
	}
	return aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
}

// readmePolicyActions returns the actions of the IAM policy in
// awssm/README.md (the first ```json block after "IAM policy").
func readmePolicyActions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../awssm/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)IAM policy.*?```json\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("no IAM policy in awssm/README.md")
	}
	var doc struct {
		Statement []struct {
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal(m[1], &doc); err != nil {
		t.Fatalf("README policy: %v", err)
	}
	var actions []string
	for _, st := range doc.Statement {
		var list []string
		if err := json.Unmarshal(st.Action, &list); err != nil {
			var one string
			if err := json.Unmarshal(st.Action, &one); err != nil {
				t.Fatalf("README policy action %s: %v", st.Action, err)
			}
			list = []string{one}
		}
		actions = append(actions, list...)
	}
	slices.Sort(actions)
	return actions
}

// accessDenied recognises AWS's AccessDeniedException, and moto's form
// of it: HTTP 403 with an XML body that the SDK's JSON protocol cannot
// decode (so no error code).
func accessDenied(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return strings.Contains(apiErr.ErrorCode(), "AccessDenied")
	}
	var respErr *smithyhttp.ResponseError
	return errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusForbidden
}

// storeFlow uses every operation of the store once and returns the first
// error. Its last step is a delete that a crash cut short (the secret
// deleted, its index entries left): the next save of the user fences the
// dead claim by creating a tombstone under the deleted name, which the
// recovery window refuses (DescribeSecret tells it apart from a live
// secret). Then the index secret is deleted out of band with a recovery
// window: Repair takes its name back (RestoreSecret) and rebuilds it.
func storeFlow(ctx context.Context, s *awssm.Store, c *secretsmanager.Client) error {
	alice := &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-a", AccessToken: "acc-a"}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"SaveToken new", func() error { return s.SaveToken(ctx, alice) }},
		{"SaveToken second", func() error { return s.SaveToken(ctx, &tokenstore.Token{UserName: "bob", AccessToken: "acc-b"}) }},
		{"FindToken", func() error { _, err := s.FindToken(ctx, &tokenstore.Token{UserName: "alice"}); return err }},
		{"FindTokenByID", func() error { _, err := s.FindTokenByID(ctx, alice.ID); return err }},
		{"SaveToken refresh", func() error { return s.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-a2"}) }},
		{"Tokens", func() error { return countTokens(ctx, s, 2) }},
		{"Check", func() error { return check(ctx, s) }},
		{"DeleteToken", func() error { return s.DeleteToken(ctx, alice.ID) }},
		{"SaveToken after a crashed delete", func() error {
			carol := &tokenstore.Token{UserName: "carol", AccessToken: "acc-c"}
			if err := s.SaveToken(ctx, carol); err != nil {
				return err
			}
			name, err := s.SecretName(carol.ID)
			if err != nil {
				return err
			}
			if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}); err != nil {
				return err
			}
			return s.SaveToken(ctx, &tokenstore.Token{UserName: "carol", AccessToken: "acc-c2"})
		}},
		{"Repair of an index deleted with a recovery window", func() error {
			name := s.Prefix() + "/" + casstore.IndexName(0)
			if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}); err != nil {
				return err
			}
			if _, err := s.Repair(ctx); err != nil {
				return err
			}
			_, err := s.FindToken(ctx, &tokenstore.Token{UserName: "carol"})
			return err
		}},
	}
	for _, st := range steps {
		if err := st.fn(); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

// With IAM enforced (a private moto_server): a user holding exactly the
// actions of the README's policy can use every operation; without any
// one of them some operation fails with AccessDeniedException, which is
// never reported as ErrNotFound. moto checks actions only (it authorises
// Secrets Manager calls against Resource "*"), so the policy's resource
// restriction is not exercised here.
func TestIAMPolicy(t *testing.T) {
	ep := startPrivateMoto(t)
	actions := readmePolicyActions(t)
	t.Logf("README policy actions: %v", actions)
	full := iamUser(t, ep, "cloudtokens-full", actions)
	without := map[string]aws.Credentials{}
	for i, a := range actions {
		rest := slices.Delete(slices.Clone(actions), i, i+1)
		without[a] = iamUser(t, ep, fmt.Sprintf("cloudtokens-no-%d", i), rest)
	}
	// From now on every request needs a permitted user.
	resp, err := http.Post(ep+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	storeAs := func(creds aws.Credentials) (*awssm.Store, *secretsmanager.Client) {
		cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
			config.WithCredentialsProvider(credentials.StaticCredentialsProvider{Value: creds}))
		if err != nil {
			t.Fatal(err)
		}
		c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(ep) })
		return newStoreAt(t, c, uniquePrefix(t), awssm.WithClaimWait(10*time.Millisecond)), c
	}
	s, c := storeAs(full)
	if err := storeFlow(t.Context(), s, c); err != nil {
		t.Fatalf("with the README policy: %v", err)
	}
	for _, a := range actions {
		s, c := storeAs(without[a])
		err := storeFlow(t.Context(), s, c)
		switch {
		case err == nil:
			t.Errorf("without %s every operation still works: the action is not needed", a)
		case errors.Is(err, tokenstore.ErrNotFound):
			t.Errorf("without %s: access denied reported as ErrNotFound: %v", a, err)
		case !accessDenied(err):
			t.Errorf("without %s: %v, want AccessDeniedException", a, err)
		default:
			t.Logf("without %s: %v", a, err)
		}
	}
}
