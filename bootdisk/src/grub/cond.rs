//! GRUB's `test` / `[ ... ]`: string and number comparisons, `-z`/`-n`,
//! file tests against the disk, `!`, `-a`, `-o` and parentheses. `None`
//! means undecidable here (an operator this reader does not know, or a
//! malformed expression), which the interpreter treats as such.

use crate::volume::Stat;

/// Evaluates `args` (without the closing `]`); `stat` answers file tests.
pub fn eval(args: &[String], stat: &dyn Fn(&str) -> Option<Stat>) -> Option<bool> {
    let mut e = Eval { args, at: 0, stat, depth: 0 };
    if args.is_empty() {
        return Some(false);
    }
    let v = e.or()?;
    (e.at == args.len()).then_some(v)
}

struct Eval<'a> {
    args: &'a [String],
    at: usize,
    stat: &'a dyn Fn(&str) -> Option<Stat>,
    depth: usize,
}

impl Eval<'_> {
    fn peek(&self) -> Option<&str> {
        self.args.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<&str> {
        let a = self.args.get(self.at)?;
        self.at += 1;
        Some(a)
    }

    fn or(&mut self) -> Option<bool> {
        let mut v = self.and()?;
        while self.peek() == Some("-o") {
            self.at += 1;
            let r = self.and()?;
            v = v || r;
        }
        Some(v)
    }

    fn and(&mut self) -> Option<bool> {
        let mut v = self.not()?;
        while self.peek() == Some("-a") {
            self.at += 1;
            let r = self.not()?;
            v = v && r;
        }
        Some(v)
    }

    fn not(&mut self) -> Option<bool> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        let v = if self.peek() == Some("!") && self.args.len() > self.at + 1 {
            self.at += 1;
            self.not().map(|v| !v)
        } else {
            self.primary()
        };
        self.depth -= 1;
        v
    }

    fn primary(&mut self) -> Option<bool> {
        let first = self.peek()?.to_string();
        // A binary operator after the first word decides the form.
        if let Some(op) = self.args.get(self.at + 1).map(String::as_str) {
            if let Some(v) = binary(&first, op, self.args.get(self.at + 2).map(String::as_str)) {
                self.at += 3;
                return v;
            }
        }
        if first == "(" {
            self.at += 1;
            let v = self.or()?;
            return (self.next() == Some(")")).then_some(v);
        }
        let unary = ["-z", "-n", "-e", "-f", "-d", "-s"];
        if unary.contains(&first.as_str()) && self.args.len() > self.at + 1 {
            self.at += 1;
            let arg = self.next()?.to_string();
            return Some(match first.as_str() {
                "-z" => arg.is_empty(),
                "-n" => !arg.is_empty(),
                "-e" => (self.stat)(&arg).is_some(),
                "-f" => matches!((self.stat)(&arg), Some(Stat::File(_))),
                "-d" => matches!((self.stat)(&arg), Some(Stat::Dir)),
                _ => matches!((self.stat)(&arg), Some(Stat::File(n)) if n > 0),
            });
        }
        if first.starts_with('-') && first.len() > 1 && self.args.len() > self.at + 1 {
            // An operator this reader does not know (-L, -nt, ...).
            return None;
        }
        self.at += 1;
        Some(!first.is_empty())
    }
}

/// `Some(result)` when `op` is a binary operator (the result `None` when
/// it cannot be decided), `None` when it is not one.
fn binary(a: &str, op: &str, b: Option<&str>) -> Option<Option<bool>> {
    let b = b?;
    let num = |s: &str| s.trim().parse::<i64>().ok();
    let cmp_num = |f: fn(i64, i64) -> bool| Some(num(a).zip(num(b)).map(|(x, y)| f(x, y)));
    match op {
        "=" | "==" => Some(Some(a == b)),
        "!=" => Some(Some(a != b)),
        "<" => Some(Some(a < b)),
        ">" => Some(Some(a > b)),
        "<=" => Some(Some(a <= b)),
        ">=" => Some(Some(a >= b)),
        "-eq" => cmp_num(|x, y| x == y),
        "-ne" => cmp_num(|x, y| x != y),
        "-lt" => cmp_num(|x, y| x < y),
        "-le" => cmp_num(|x, y| x <= y),
        "-gt" => cmp_num(|x, y| x > y),
        "-ge" => cmp_num(|x, y| x >= y),
        "-nt" | "-ot" | "-pgt" | "-plt" | "-bigger" | "-smaller" => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<bool> {
        let args: Vec<String> = s.split(' ').filter(|w| !w.is_empty()).map(|w| w.replace('_', "")).collect();
        eval(&args, &|p| match p {
            "/boot/grub/grubenv" => Some(Stat::File(1024)),
            "/empty" => Some(Stat::File(0)),
            "/boot" => Some(Stat::Dir),
            _ => None,
        })
    }

    #[test]
    fn grub_cfg_conditions() {
        assert_eq!(t("xy = xy"), Some(true));
        assert_eq!(t("x = xy"), Some(false));
        assert_eq!(t("_"), Some(false), "[ \"\" ]: empty is false");
        assert_eq!(t("1 != 1"), Some(false));
        assert_eq!(t("-s /boot/grub/grubenv"), Some(true));
        assert_eq!(
            (t("-s /empty"), t("-f /empty"), t("-e /boot"), t("-d /nope"), t("-f /boot")),
            (Some(false), Some(true), Some(true), Some(false), Some(false))
        );
        assert_eq!(t("-z _"), Some(true));
        assert_eq!(t("-n abc"), Some(true));
        assert_eq!(t("! a = b"), Some(true));
        assert_eq!(t("a = b -o c = c"), Some(true));
        assert_eq!(t("a = a -a c = d"), Some(false));
        assert_eq!(t("( a = b ) -o ( 1 -lt 2 )"), Some(true));
        assert_eq!(t("10 -gt 9"), Some(true));
        assert_eq!(t("x -gt 9"), None, "not numbers");
        assert_eq!(t("a -nt b"), None);
        assert_eq!(t("-L /x"), None);
        assert_eq!(t("a b"), None, "malformed");
        assert_eq!(t(""), Some(false));
        assert_eq!(t("-z"), Some(true), "one word: a non-empty string");
    }
}
