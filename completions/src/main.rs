//! Writes the shell completions of the tools, generated from the same clap
//! definitions their `--help` comes from, so the two cannot disagree:
//!
//! ```text
//! completions OUTDIR
//! ```
//!
//! writes `OUTDIR/bash/TOOL`, `OUTDIR/zsh/_TOOL` and `OUTDIR/fish/TOOL.fish`
//! for bhyve, bhyveload and bhyvectl (scripts/package installs them where
//! bash-completion, zsh and fish look).

use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Each tool's name and command-line definition.
fn tools() -> [(&'static str, clap::Command); 3] {
    [("bhyve", bhyve::cli::command()), ("bhyveload", bhyveload::cli::command()), ("bhyvectl", bhyvectl::cli::command())]
}

/// Where a shell's completion for `tool` goes under `out`.
fn path(out: &Path, shell: Shell, tool: &str) -> PathBuf {
    match shell {
        Shell::Zsh => out.join("zsh").join(format!("_{tool}")),
        Shell::Fish => out.join("fish").join(format!("{tool}.fish")),
        _ => out.join("bash").join(tool),
    }
}

fn write_all(out: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        for (name, mut cmd) in tools() {
            let p = path(out, shell, name);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut text);
            std::fs::write(&p, text)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: completions OUTDIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("completions: {out}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_completed() {
        let dir = std::env::temp_dir().join(format!("completions-test-{}", std::process::id()));
        write_all(&dir).unwrap();
        for (name, cmd) in tools() {
            let bash = std::fs::read_to_string(path(&dir, Shell::Bash, name)).unwrap();
            let fish = std::fs::read_to_string(path(&dir, Shell::Fish, name)).unwrap();
            let zsh = std::fs::read_to_string(path(&dir, Shell::Zsh, name)).unwrap();
            assert!(zsh.starts_with(&format!("#compdef {name}")));
            for a in cmd.get_arguments() {
                if let Some(s) = a.get_short() {
                    assert!(bash.contains(&format!("-{s}")), "{name}: bash lacks -{s}");
                    assert!(fish.contains(&format!("-s {s}")), "{name}: fish lacks -{s}");
                }
                if let Some(l) = a.get_long() {
                    assert!(bash.contains(&format!("--{l}")), "{name}: bash lacks --{l}");
                    assert!(fish.contains(&format!("-l {l}")), "{name}: fish lacks --{l}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
