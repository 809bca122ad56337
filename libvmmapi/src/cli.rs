//! Command-line errors the way all the tools report them (feature `cli`):
//! one line naming the bad flag, then the usage line, exit status 2;
//! `--help` on stdout with status 0.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Leave now: print these and exit with `code`.
#[derive(Debug)]
pub struct Exit {
    /// Exit status.
    pub code: u8,
    /// For stdout (help).
    pub out: String,
    /// For stderr (errors).
    pub err: String,
}

impl Exit {
    /// Prints what there is to print and gives the exit status.
    pub fn report(self) -> std::process::ExitCode {
        print!("{}", self.out);
        eprint!("{}", self.err);
        std::process::ExitCode::from(self.code)
    }
}

impl Exit {
    /// For tests: checks that this is a usage error in the tools' form (exit
    /// 2, one line, then `usage`) and returns its first line.
    pub fn usage_error_line(&self, usage: &str) -> String {
        assert_eq!(self.code, 2, "exit status of a usage error");
        assert_eq!(self.err.lines().count(), 2, "one line plus usage: {:?}", self.err);
        assert!(self.err.ends_with(&format!("{usage}\n")), "ends with the usage: {:?}", self.err);
        self.err.lines().next().unwrap_or_default().to_string()
    }
}

/// `prog: msg` and the usage line, exit 2.
pub fn usage_error(prog: &str, usage: &str, msg: &str) -> Exit {
    Exit { code: 2, out: String::new(), err: format!("{prog}: {msg}\n{usage}\n") }
}

/// What to do with a clap parse error: help on stdout, or a usage error.
pub fn clap_exit(prog: &str, usage: &str, e: &clap::Error) -> Exit {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            Exit { code: 0, out: e.render().to_string(), err: String::new() }
        }
        _ => usage_error(prog, usage, &clap_message(e)),
    }
}

/// One line for a clap error, naming the offending flag.
pub fn clap_message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    match (e.kind(), arg) {
        (ErrorKind::UnknownArgument, Some(a)) => format!("unknown flag '{a}'"),
        (ErrorKind::MissingRequiredArgument, Some(a)) => format!("missing {a}"),
        (ErrorKind::InvalidValue, Some(a)) => format!("flag '{a}' needs a value"),
        (ErrorKind::ArgumentConflict, Some(a)) | (ErrorKind::TooManyValues, Some(a)) => {
            format!("flag '{a}' given twice or in conflict")
        }
        (_, Some(a)) => format!("bad flag '{a}'"),
        _ => {
            // Fall back to clap's own first line, without its "error: ".
            let text = e.render().to_string();
            text.lines().next().unwrap_or("bad command line").trim_start_matches("error: ").to_string()
        }
    }
}
