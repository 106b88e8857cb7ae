package awssm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The IAM policy in README.md lists exactly the Secrets Manager
// operations this package's code calls, restricts the secret-level ones
// to the prefix, and gives "*" only to the two actions without
// resource-level permissions.
func TestPolicyActions(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)IAM policy.*?```json\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("no IAM policy in README.md")
	}
	var doc struct {
		Version   string
		Statement []struct {
			Effect   string
			Action   []string
			Resource string
		}
	}
	if err := json.Unmarshal(m[1], &doc); err != nil {
		t.Fatalf("README policy: %v", err)
	}
	var inPolicy []string
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			t.Errorf("statement effect %q", st.Effect)
		}
		for _, a := range st.Action {
			inPolicy = append(inPolicy, a)
			wild := a == "secretsmanager:BatchGetSecretValue" || a == "secretsmanager:ListSecrets"
			switch {
			case wild && st.Resource != "*":
				t.Errorf("%s needs Resource \"*\", has %q", a, st.Resource)
			case !wild && st.Resource != "arn:aws:secretsmanager:*:*:secret:myapp/tokens/*":
				t.Errorf("%s should be restricted to the prefix's secrets, has %q", a, st.Resource)
			}
		}
	}
	slices.Sort(inPolicy)

	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`\bb\.c\.([A-Z]\w+)\(|secretsmanager\.New(\w+)Paginator\(`)
	var inCode []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			op := m[1] + m[2]
			if a := "secretsmanager:" + op; !slices.Contains(inCode, a) {
				inCode = append(inCode, a)
			}
		}
	}
	slices.Sort(inCode)
	if !slices.Equal(inPolicy, inCode) {
		t.Errorf("README policy actions %v\ncode calls            %v", inPolicy, inCode)
	}
}
