//! Just enough of the POSIX shell grammar to judge a Bash tool call: where one simple command
//! ends and the next begins, which words are paths, and whether anything is substituted at run
//! time. Nothing here ever runs a shell.

/// A command line split into its simple commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Each simple command (between `;`, `&&`, `||`, `|`, `&`, newlines and parentheses), as
    /// words with quotes removed; redirection operators stay as their own words.
    pub commands: Vec<Vec<String>>,
    /// `$(…)`, backticks or process substitution outside single quotes: what runs cannot be known
    /// from the text, so no rule can vouch for it.
    pub has_substitution: bool,
}

impl CommandLine {
    /// The simple commands as text, words joined by one space (what rules are matched against).
    pub fn command_texts(&self) -> Vec<String> {
        self.commands.iter().map(|words| words.join(" ")).collect()
    }

    /// Every word that may name a file: all but the program name of each simple command (running
    /// `/usr/bin/env` touches nothing the user's files) and the redirection operators.
    pub fn argument_words(&self) -> impl Iterator<Item = &str> {
        self.commands.iter().flat_map(|words| {
            let program =
                words.iter().position(|word| !is_assignment(word) && !is_redirection(word));
            words
                .iter()
                .enumerate()
                .filter(move |(index, _)| Some(*index) != program)
                .map(|(_, word)| word.as_str())
                .filter(|word| !is_redirection(word))
        })
    }
}

/// Split `command` into simple commands and words.
pub fn parse(command: &str) -> CommandLine {
    let mut lexer = Lexer::default();
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                lexer.in_word = true;
                for quoted in chars.by_ref() {
                    if quoted == '\'' {
                        break;
                    }
                    lexer.word.push(quoted);
                }
            }
            '"' => {
                lexer.in_word = true;
                while let Some(quoted) = chars.next() {
                    match quoted {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                if !matches!(next, '"' | '\\' | '$' | '`') {
                                    lexer.word.push('\\');
                                }
                                lexer.word.push(next);
                            }
                        }
                        '`' => {
                            lexer.has_substitution = true;
                            lexer.word.push(quoted);
                        }
                        '$' if chars.peek() == Some(&'(') => {
                            lexer.has_substitution = true;
                            lexer.word.push(quoted);
                        }
                        other => lexer.word.push(other),
                    }
                }
            }
            '\\' => {
                lexer.in_word = true;
                // A backslash-newline continues the line.
                match chars.next() {
                    Some('\n') | None => {}
                    Some(next) => lexer.word.push(next),
                }
            }
            '`' => {
                lexer.has_substitution = true;
                lexer.in_word = true;
                lexer.word.push(c);
            }
            '$' if chars.peek() == Some(&'(') => {
                lexer.has_substitution = true;
                lexer.in_word = true;
                lexer.word.push(c);
            }
            '<' | '>' if chars.peek() == Some(&'(') => {
                lexer.has_substitution = true;
                lexer.end_word();
                lexer.end_command();
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                // `&>` and `>&` are redirections, not command separators.
                if c == '&' && chars.peek() == Some(&'>') {
                    lexer.end_word();
                    chars.next();
                    lexer.push_operator(if chars.peek() == Some(&'>') {
                        chars.next();
                        "&>>"
                    } else {
                        "&>"
                    });
                    continue;
                }
                lexer.end_word();
                lexer.end_command();
                if matches!(c, '&' | '|') && chars.peek() == Some(&c) {
                    chars.next();
                }
            }
            '<' | '>' => {
                lexer.end_word();
                let mut operator = String::from(c);
                while let Some(&next) = chars.peek() {
                    if matches!(next, '>' | '<' | '&' | '|') {
                        operator.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                lexer.push_operator(&operator);
            }
            '#' if !lexer.in_word => {
                // A comment runs to the end of the line.
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        lexer.end_command();
                        break;
                    }
                }
            }
            c if c.is_whitespace() => lexer.end_word(),
            other => {
                lexer.in_word = true;
                lexer.word.push(other);
            }
        }
    }
    lexer.end_word();
    lexer.end_command();
    CommandLine { commands: lexer.commands, has_substitution: lexer.has_substitution }
}

#[derive(Default)]
struct Lexer {
    commands: Vec<Vec<String>>,
    current: Vec<String>,
    word: String,
    /// Distinguishes an empty quoted word (`''`) from no word.
    in_word: bool,
    has_substitution: bool,
}

impl Lexer {
    fn end_word(&mut self) {
        if self.in_word {
            self.current.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }

    fn push_operator(&mut self, operator: &str) {
        // A file descriptor number glued to the operator (`2>`) belongs to it.
        if let Some(last) = self.current.last()
            && !last.is_empty()
            && last.chars().all(|c| c.is_ascii_digit())
        {
            self.current.pop();
        }
        self.current.push(operator.to_owned());
    }

    fn end_command(&mut self) {
        if !self.current.is_empty() {
            self.commands.push(std::mem::take(&mut self.current));
        }
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn is_redirection(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| matches!(c, '<' | '>' | '&' | '|'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn texts(command: &str) -> Vec<String> {
        parse(command).command_texts()
    }

    #[test]
    fn separators_split_simple_commands() {
        assert_eq!(texts("cargo test"), ["cargo test"]);
        assert_eq!(
            texts("cargo build && cargo test || echo failed; ls | wc -l & sleep 1"),
            ["cargo build", "cargo test", "echo failed", "ls", "wc -l", "sleep 1"]
        );
        assert_eq!(texts("(cd sub && make)\nmake install"), ["cd sub", "make", "make install"]);
        assert_eq!(texts("  "), Vec::<String>::new());
    }

    #[test]
    fn quotes_and_escapes_keep_words_together() {
        let line = parse(r#"grep -r "a; b" 'c && d' e\ f "x\"y" ''"#);
        assert_eq!(line.commands, [["grep", "-r", "a; b", "c && d", "e f", "x\"y", ""]]);
        assert!(!line.has_substitution);
    }

    #[test]
    fn substitutions_are_detected_outside_single_quotes() {
        for command in
            ["echo $(whoami)", "echo `id`", "echo \"$(id)\"", "diff <(ls) x", "tee >(cat)"]
        {
            assert!(parse(command).has_substitution, "{command}");
        }
        for command in ["echo '$(id)'", "echo '`id`'", "echo $HOME", "echo ${HOME}"] {
            assert!(!parse(command).has_substitution, "{command}");
        }
    }

    #[test]
    fn redirections_are_operators_and_their_targets_are_arguments() {
        let line = parse("cargo test 2>/dev/null >out.txt &>> all.log < in.txt");
        assert_eq!(
            line.commands,
            [["cargo", "test", ">", "/dev/null", ">", "out.txt", "&>>", "all.log", "<", "in.txt"]]
        );
        let arguments: Vec<&str> = line.argument_words().collect();
        assert_eq!(arguments, ["test", "/dev/null", "out.txt", "all.log", "in.txt"]);
    }

    #[test]
    fn program_names_and_assignments_are_not_arguments() {
        let line = parse("RUST_LOG=debug /usr/bin/env cat /etc/passwd; X=1 ls ~/.ssh");
        let arguments: Vec<&str> = line.argument_words().collect();
        assert_eq!(arguments, ["RUST_LOG=debug", "cat", "/etc/passwd", "X=1", "~/.ssh"]);
    }

    #[test]
    fn comments_end_at_the_line_end() {
        assert_eq!(texts("ls # rm -rf /\npwd"), ["ls", "pwd"]);
        assert_eq!(texts("echo a#b"), ["echo a#b"]);
    }
}
