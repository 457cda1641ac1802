//! `runner completions SHELL`: clap's completions, plus what clap cannot
//! know when it writes them: the policy names (asked of `runner list
//! --names` at completion time, so a policy added later is offered) and
//! `lab` for `--target`.

use std::io::Write;

use clap_complete::Shell;

/// Completes the first argument of `exec` and `review`, and `--target`'s value;
/// everything else goes to clap's `_runner`.
const BASH: &str = r#"
_runner_with_policies() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ "${prev}" == --target ]]; then
        COMPREPLY=( $(compgen -W "lab" -- "${cur}") $(compgen -f -- "${cur}") )
        return 0
    fi
    if [[ ${COMP_CWORD} -eq 2 && ( "${COMP_WORDS[1]}" == exec || "${COMP_WORDS[1]}" == review ) && "${cur}" != -* ]]; then
        COMPREPLY=( $(compgen -W "$(runner list --names 2>/dev/null)" -- "${cur}") $(compgen -f -X '!*.wasm' -- "${cur}") )
        return 0
    fi
    _runner "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _runner_with_policies -o nosort -o bashdefault -o default runner
else
    complete -F _runner_with_policies -o bashdefault -o default runner
fi
"#;

const FISH: &str = r#"
complete -c runner -n "__fish_runner_using_subcommand exec; or __fish_runner_using_subcommand review" -f -a "(runner list --names 2>/dev/null)" -d policy
complete -c runner -n "__fish_runner_using_subcommand exec" -l target -f -a "lab (__fish_complete_path)"
"#;

const ZSH_POLICIES: &str = r#"
_runner_policies() {
    local -a names
    names=(${(f)"$(runner list --names 2>/dev/null)"})
    _alternative "policies:policy:(${names})" 'files:component file:_files -g "*.wasm"'
}
"#;

/// Print the completions for `shell`.
pub fn print(shell: Shell, command: &mut clap::Command) {
    let mut generated = Vec::new();
    clap_complete::generate(shell, command, "runner", &mut generated);
    let mut text = String::from_utf8_lossy(&generated).into_owned();
    match shell {
        Shell::Bash => text.push_str(BASH),
        Shell::Fish => text.push_str(FISH),
        Shell::Zsh => {
            // The policy argument of `exec` and `review` completes with the names;
            // the helper goes right after `#compdef`, before the file calls `_runner`.
            text = text
                .lines()
                .map(|line| if line.starts_with("':policy -- ") { line.replace(":_default'", ":_runner_policies'") } else { line.to_string() })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
            if let Some(end) = text.find('\n') {
                text.insert_str(end + 1, ZSH_POLICIES);
            }
        }
        _ => {}
    }
    let _ = std::io::stdout().write_all(text.as_bytes());
}
