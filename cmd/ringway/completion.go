package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand prints a shell's completion script. The bash and zsh
// scripts ask ringway itself for the words that may follow
// (`ringway ... --generate-bash-completion`, urfave/cli's protocol), so
// they follow the commands and flags of the installed binary; they are
// urfave/cli v2's autocomplete/ scripts (MIT) with the program name set.
// fish gets urfave/cli's generated static script.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name: "completion",
		// Hidden from the command list (the app's description names it),
		// which stays aligned as it was.
		Hidden:    true,
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Load it in the current shell, or install it for every shell:\n" +
			"  bash: source <(ringway completion bash)   or  ringway completion bash > /etc/bash_completion.d/ringway\n" +
			"  zsh:  source <(ringway completion zsh)    or  ringway completion zsh > \"${fpath[1]}/_ringway\"\n" +
			"  fish: ringway completion fish | source    or  ringway completion fish > ~/.config/fish/completions/ringway.fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion needs exactly one shell, bash, zsh or fish; got %d arguments", c.NArg())
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				script = s
			default:
				return usagef("completion: unknown shell %q; write bash, zsh or fish", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, strings.ReplaceAll(script, "$PROG", c.App.Name))
			return err
		},
	}
}

const bashCompletion = `# bash completion for $PROG (urfave/cli v2 autocomplete/bash_autocomplete)
_$PROG_init_completion() {
  COMPREPLY=()
  _get_comp_words_by_ref "$@" cur prev words cword
}

_$PROG_bash_autocomplete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur opts base words
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      _$PROG_init_completion -n "=:" || return
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      requestComp="${words[*]} ${cur} --generate-bash-completion"
    else
      requestComp="${words[*]} --generate-bash-completion"
    fi
    opts=$(eval "${requestComp}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${opts}" -- ${cur}))
    return 0
  fi
}

complete -o bashdefault -o default -o nospace -F _$PROG_bash_autocomplete $PROG
`

const zshCompletion = `#compdef $PROG
# zsh completion for $PROG (urfave/cli v2 autocomplete/zsh_autocomplete)

_$PROG_zsh_autocomplete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi

  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

compdef _$PROG_zsh_autocomplete $PROG
`
