package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		shell, want string
	}{
		{"bash", "complete -o bashdefault -o default -o nospace -F _ringway_bash_autocomplete ringway"},
		{"zsh", "compdef _ringway_zsh_autocomplete ringway"},
		{"fish", "complete -c ringway -n '__fish_ringway_no_subcommand' -f -l help"},
	} {
		code, out, errOut := runCLI(t, "completion", tc.shell)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("completion %s: exit %d, stderr %q; output lacks %q:\n%s", tc.shell, code, errOut, tc.want, out)
		}
		if strings.Contains(out, "$PROG") {
			t.Errorf("completion %s: $PROG left in the script", tc.shell)
		}
		if sh, err := exec.LookPath(tc.shell); err == nil && tc.shell == "bash" {
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = strings.NewReader(out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", tc.shell, err, b)
			}
		}
	}
	if code, _, errOut := runCLI(t, "completion", "tcsh"); code != exitUsage || !strings.Contains(errOut, `unknown shell "tcsh"; write bash, zsh or fish`) {
		t.Errorf("completion tcsh: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "completion"); code != exitUsage || !strings.Contains(errOut, "completion needs exactly one shell") {
		t.Errorf("completion: exit %d, %q", code, errOut)
	}
	// What the bash and zsh scripts ask: the words that may follow.
	// urfave/cli reads the last word from os.Args, not from the arguments
	// it is given.
	args := []string{"vip", "--generate-bash-completion"}
	defer func(saved []string) { os.Args = saved }(os.Args)
	os.Args = append([]string{"ringway"}, args...)
	code, out, _ := runCLI(t, args...)
	if code != exitOK || !strings.Contains(out, "move\n") || !strings.Contains(out, "unstick\n") {
		t.Errorf("vip --generate-bash-completion: exit %d:\n%s", code, out)
	}
}
