//! GRUB's script language as far as `grub.cfg` files use it: words with
//! single and double quotes, `$var` and `${var}`, backslash escapes,
//! comments, `;` and newlines; `if`/`elif`/`else`/`fi`, `menuentry` and
//! `submenu` blocks; `function` and loops are parsed so they can be
//! skipped. Words keep their variable references: they are expanded when
//! the command runs, with the variables of that moment.

use std::rc::Rc;

/// A piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Unquoted text.
    Lit(String),
    /// Quoted text (no expansion, no splitting).
    Quoted(String),
    /// A variable; `quoted` ones are not split on blanks.
    Var {
        /// Its name.
        name: String,
        /// Inside double quotes.
        quoted: bool,
    },
}

/// One word of a command, before expansion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word(pub Vec<Part>);

impl Word {
    /// The word's text when it is plain unquoted text (keywords are).
    pub fn plain(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

/// A statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// A simple command.
    Cmd {
        /// Line of its first word.
        line: u32,
        /// Its words.
        words: Vec<Word>,
    },
    /// `if`, its `elif`s and `else`.
    If {
        /// Line of the `if`.
        line: u32,
        /// (condition, body) pairs.
        arms: Vec<(Vec<Stmt>, Vec<Stmt>)>,
        /// The `else` body.
        otherwise: Option<Vec<Stmt>>,
    },
    /// `menuentry` or `submenu`.
    Menu {
        /// Line of the keyword.
        line: u32,
        /// A submenu rather than an entry.
        submenu: bool,
        /// The words between the keyword and `{`.
        words: Vec<Word>,
        /// The body, run when the entry is chosen.
        body: Rc<Vec<Stmt>>,
    },
    /// A function definition or a loop: parsed, never run.
    Skipped {
        /// Line of the keyword.
        line: u32,
        /// Whether it holds commands that decide what boots.
        relevant: bool,
    },
}

/// A syntax error: line and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub line: u32,
    /// What.
    pub what: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    Sep,
    Open,
    Close,
}

/// Nesting deeper than this is refused (a real grub.cfg nests 3 or 4 deep).
const MAX_DEPTH: usize = 64;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lex(text: &str) -> Result<Vec<(Tok, u32)>, SyntaxError> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1u32;
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\r' => {
                chars.next();
            }
            '\n' | ';' => {
                chars.next();
                toks.push((Tok::Sep, line));
                if c == '\n' {
                    line += 1;
                }
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            _ => {
                let start = line;
                let mut parts: Vec<Part> = Vec::new();
                let mut lit = String::new();
                let flush = |lit: &mut String, parts: &mut Vec<Part>| {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(lit)));
                    }
                };
                while let Some(&c) = chars.peek() {
                    match c {
                        ' ' | '\t' | '\r' | '\n' | ';' => break,
                        '\\' => {
                            chars.next();
                            match chars.next() {
                                Some('\n') => line += 1,
                                Some(e) => lit.push(e),
                                None => {}
                            }
                        }
                        '\'' => {
                            chars.next();
                            flush(&mut lit, &mut parts);
                            let mut q = String::new();
                            loop {
                                match chars.next() {
                                    Some('\'') => break,
                                    Some(c) => {
                                        line += u32::from(c == '\n');
                                        q.push(c);
                                    }
                                    None => {
                                        return Err(SyntaxError { line: start, what: "unterminated ' quote".into() })
                                    }
                                }
                            }
                            parts.push(Part::Quoted(q));
                        }
                        '"' => {
                            chars.next();
                            flush(&mut lit, &mut parts);
                            let mut q = String::new();
                            loop {
                                match chars.next() {
                                    Some('"') => break,
                                    Some('\\') => match chars.next() {
                                        Some('\n') => line += 1,
                                        Some(e @ ('$' | '"' | '\\')) => q.push(e),
                                        Some(e) => {
                                            line += u32::from(e == '\n');
                                            q.push('\\');
                                            q.push(e);
                                        }
                                        None => {}
                                    },
                                    Some('$') => {
                                        if let Some(name) = var_name(&mut chars) {
                                            if !q.is_empty() {
                                                parts.push(Part::Quoted(std::mem::take(&mut q)));
                                            }
                                            parts.push(Part::Var { name, quoted: true });
                                        } else {
                                            q.push('$');
                                        }
                                    }
                                    Some(c) => {
                                        line += u32::from(c == '\n');
                                        q.push(c);
                                    }
                                    None => {
                                        return Err(SyntaxError { line: start, what: "unterminated \" quote".into() })
                                    }
                                }
                            }
                            // An empty "" is still a word.
                            if !q.is_empty() || !parts.iter().any(|p| matches!(p, Part::Var { quoted: true, .. })) {
                                parts.push(Part::Quoted(q));
                            }
                        }
                        '$' => {
                            chars.next();
                            match var_name(&mut chars) {
                                Some(name) => {
                                    flush(&mut lit, &mut parts);
                                    parts.push(Part::Var { name, quoted: false });
                                }
                                None => lit.push('$'),
                            }
                        }
                        _ => {
                            chars.next();
                            lit.push(c);
                        }
                    }
                }
                flush(&mut lit, &mut parts);
                if parts.is_empty() {
                    // Only a line continuation.
                    continue;
                }
                let word = Word(parts);
                let tok = match word.plain() {
                    Some("{") => Tok::Open,
                    Some("}") => Tok::Close,
                    _ => Tok::Word(word),
                };
                toks.push((tok, start));
            }
        }
    }
    Ok(toks)
}

/// After a `$`: `{name}` or a name (letters, digits, `_`), or one of the
/// special `?`, `#`, `*`, `@`. `None`: a lone `$`.
fn var_name(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    match chars.peek() {
        Some('{') => {
            chars.next();
            let mut n = String::new();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                n.push(c);
            }
            Some(n)
        }
        Some(&c @ ('?' | '#' | '*' | '@')) => {
            chars.next();
            Some(c.to_string())
        }
        Some(&c) if is_name_char(c) => {
            let mut n = String::new();
            while let Some(&c) = chars.peek().filter(|c| is_name_char(**c)) {
                n.push(c);
                chars.next();
            }
            Some(n)
        }
        _ => None,
    }
}

/// Parses a whole script.
pub fn parse(text: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let toks = lex(text)?;
    let mut p = Parser { toks, at: 0, depth: 0 };
    let list = p.list(&[])?;
    match p.toks.get(p.at) {
        None => Ok(list),
        Some((tok, line)) => Err(SyntaxError { line: *line, what: format!("unexpected {}", describe(tok)) }),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{}'", w.plain().unwrap_or("word")),
        Tok::Sep => "end of command".into(),
        Tok::Open => "'{'".into(),
        Tok::Close => "'}'".into(),
    }
}

/// Commands whose presence in a skipped block could change what boots.
const RELEVANT: [&str; 8] = ["linux", "initrd", "search", "configfile", "source", "load_env", "blscfg", "boot"];
/// Variables whose assignment could change what boots.
const RELEVANT_VARS: [&str; 5] = ["root", "prefix", "default", "saved_entry", "next_entry"];

/// The variable a word assigns (`NAME=...` with NAME unquoted).
fn assigned(w: &Word) -> Option<&str> {
    match w.0.first() {
        Some(Part::Lit(s)) => s.split_once('=').map(|(n, _)| n),
        _ => None,
    }
}

struct Parser {
    toks: Vec<(Tok, u32)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek_keyword(&self) -> Option<&str> {
        match self.toks.get(self.at) {
            Some((Tok::Word(w), _)) => w.plain(),
            _ => None,
        }
    }

    fn line(&self) -> u32 {
        self.toks.get(self.at).or(self.toks.last()).map_or(1, |t| t.1)
    }

    fn skip_seps(&mut self) {
        while matches!(self.toks.get(self.at), Some((Tok::Sep, _))) {
            self.at += 1;
        }
    }

    fn expect_keyword(&mut self, kw: &str, opened: u32, what: &str) -> Result<(), SyntaxError> {
        self.skip_seps();
        if self.peek_keyword() == Some(kw) {
            self.at += 1;
            return Ok(());
        }
        Err(SyntaxError { line: opened, what: format!("{what} without '{kw}'") })
    }

    /// Statements up to (not including) one of the `stop` keywords, a
    /// `}`, or the end.
    fn list(&mut self, stop: &[&str]) -> Result<Vec<Stmt>, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError { line: self.line(), what: format!("nested more than {MAX_DEPTH} deep") });
        }
        let mut out = Vec::new();
        loop {
            self.skip_seps();
            let Some((tok, line)) = self.toks.get(self.at).cloned() else { break };
            match tok {
                Tok::Close => break,
                Tok::Open => return Err(SyntaxError { line, what: "unexpected '{'".into() }),
                Tok::Sep => unreachable!("skipped above"),
                Tok::Word(w) => {
                    let kw = w.plain().unwrap_or("");
                    if stop.contains(&kw) {
                        break;
                    }
                    out.push(self.statement(kw, line)?);
                }
            }
        }
        self.depth -= 1;
        Ok(out)
    }

    fn statement(&mut self, kw: &str, line: u32) -> Result<Stmt, SyntaxError> {
        match kw {
            "if" => {
                self.at += 1;
                let mut arms = Vec::new();
                let mut otherwise = None;
                loop {
                    let cond = self.list(&["then"])?;
                    self.expect_keyword("then", line, "'if'")?;
                    let body = self.list(&["elif", "else", "fi"])?;
                    arms.push((cond, body));
                    match self.peek_keyword() {
                        Some("elif") => self.at += 1,
                        Some("else") => {
                            self.at += 1;
                            otherwise = Some(self.list(&["fi"])?);
                            self.expect_keyword("fi", line, "'if'")?;
                            break;
                        }
                        _ => {
                            self.expect_keyword("fi", line, "'if'")?;
                            break;
                        }
                    }
                }
                Ok(Stmt::If { line, arms, otherwise })
            }
            "menuentry" | "submenu" => {
                self.at += 1;
                let mut words = Vec::new();
                loop {
                    match self.toks.get(self.at) {
                        Some((Tok::Word(w), _)) => words.push(w.clone()),
                        Some((Tok::Open, _)) => break,
                        _ => return Err(SyntaxError { line, what: format!("'{kw}' without '{{'") }),
                    }
                    self.at += 1;
                }
                self.at += 1;
                let body = self.list(&[])?;
                self.close(line, kw)?;
                Ok(Stmt::Menu { line, submenu: kw == "submenu", words, body: Rc::new(body) })
            }
            "function" => {
                self.at += 1;
                while matches!(self.toks.get(self.at), Some((Tok::Word(_), _))) {
                    self.at += 1;
                }
                self.skip_seps();
                if !matches!(self.toks.get(self.at), Some((Tok::Open, _))) {
                    return Err(SyntaxError { line, what: "'function' without '{'".into() });
                }
                self.at += 1;
                let body = self.list(&[])?;
                self.close(line, kw)?;
                Ok(Stmt::Skipped { line, relevant: relevant(&body) })
            }
            "for" | "while" | "until" => {
                self.at += 1;
                let head = self.list(&["do"])?;
                self.expect_keyword("do", line, &format!("'{kw}'"))?;
                let body = self.list(&["done"])?;
                self.expect_keyword("done", line, &format!("'{kw}'"))?;
                Ok(Stmt::Skipped { line, relevant: relevant(&head) || relevant(&body) })
            }
            _ => {
                let mut words = Vec::new();
                while let Some((Tok::Word(w), _)) = self.toks.get(self.at) {
                    words.push(w.clone());
                    self.at += 1;
                }
                Ok(Stmt::Cmd { line, words })
            }
        }
    }

    fn close(&mut self, line: u32, kw: &str) -> Result<(), SyntaxError> {
        self.skip_seps();
        match self.toks.get(self.at) {
            Some((Tok::Close, _)) => {
                self.at += 1;
                Ok(())
            }
            _ => Err(SyntaxError { line, what: format!("'{kw}' without its closing '}}'") }),
        }
    }
}

/// Whether statements hold a command that decides what boots.
pub fn relevant(list: &[Stmt]) -> bool {
    list.iter().any(|s| match s {
        Stmt::Cmd { words, .. } => {
            let sets = |w: &Word| assigned(w).is_some_and(|n| RELEVANT_VARS.contains(&n));
            match words.first().and_then(Word::plain) {
                Some("set") => words[1..].iter().any(sets),
                Some(w) => RELEVANT.iter().any(|r| w.starts_with(r)) || words.first().is_some_and(sets),
                None => words.first().is_some_and(sets),
            }
        }
        Stmt::If { arms, otherwise, .. } => {
            arms.iter().any(|(c, b)| relevant(c) || relevant(b)) || otherwise.as_deref().is_some_and(relevant)
        }
        Stmt::Menu { .. } => true,
        Stmt::Skipped { relevant, .. } => *relevant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.into())
    }

    #[test]
    fn words_quotes_and_variables() {
        let s = parse("set prefix=($root)'/boot/grub' # comment\necho \"a $x ${y}b\" \\\n  c\\ d").unwrap();
        let Stmt::Cmd { line: 1, words } = &s[0] else { panic!("{s:?}") };
        assert_eq!(
            words[1].0,
            vec![
                lit("prefix=("),
                Part::Var { name: "root".into(), quoted: false },
                lit(")"),
                Part::Quoted("/boot/grub".into())
            ]
        );
        let Stmt::Cmd { line: 2, words } = &s[1] else { panic!("{s:?}") };
        assert_eq!(
            words[1].0,
            vec![
                Part::Quoted("a ".into()),
                Part::Var { name: "x".into(), quoted: true },
                Part::Quoted(" ".into()),
                Part::Var { name: "y".into(), quoted: true },
                Part::Quoted("b".into())
            ]
        );
        assert_eq!(words[2].0, vec![lit("c d")], "continued line, escaped blank");
        assert_eq!(
            parse("x \"\"").unwrap()[0],
            Stmt::Cmd { line: 1, words: vec![Word(vec![lit("x")]), Word(vec![Part::Quoted(String::new())])] }
        );
    }

    #[test]
    fn blocks() {
        let s = parse(
            "if [ x = y ]; then\n a\nelif b; then c; else\n d\nfi\nmenuentry 'T' --id t {\n linux /k\n}\nsubmenu S { menuentry U { x; } }\nfunction f { linux /x; }\nfor i in 1 2; do echo; done",
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        let Stmt::If { arms, otherwise, .. } = &s[0] else { panic!() };
        assert_eq!((arms.len(), otherwise.as_ref().map(Vec::len)), (2, Some(1)));
        let Stmt::Menu { submenu: false, words, body, line: 6 } = &s[1] else { panic!("{:?}", s[1]) };
        assert_eq!((words.len(), body.len()), (3, 1));
        let Stmt::Menu { submenu: true, body, .. } = &s[2] else { panic!() };
        assert!(matches!(body[0], Stmt::Menu { .. }));
        assert_eq!(s[3], Stmt::Skipped { line: 10, relevant: true });
        assert_eq!(s[4], Stmt::Skipped { line: 11, relevant: false });
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(e("a\nif x; then\n b\n").line, 2);
        assert!(e("if x; then b\n").what.contains("'if' without 'fi'"));
        assert!(e("menuentry x {\n linux /k\n").what.contains("without its closing '}'"));
        assert!(e("menuentry x\n").what.contains("without '{'"));
        assert!(e("echo 'abc").what.contains("unterminated"));
        assert!(e("}\n").what.contains("unexpected '}'"));
        assert!(e(&"if x; then ".repeat(100)).what.contains("nested more than"));
    }
}
