//! `${var}` interpolation in suite strings.

use std::collections::HashMap;

/// A string with `${name}` references; `$$` is a literal `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// Variables visible to a case: captures, listener ports, repeat counters.
pub type Vars = HashMap<String, String>;

impl Template {
    /// Parses `s`; an unterminated `${` or a bad name is an error with its byte offset.
    pub fn parse(s: &str) -> Result<Template, (usize, String)> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                text.push('$');
                offset += i + 2;
                rest = stripped;
            } else if let Some(inner) = after.strip_prefix('{') {
                let Some(end) = inner.find('}') else {
                    return Err((offset + i, "unterminated '${' (a variable is written ${name})".into()));
                };
                let name = &inner[..end];
                let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
                if !valid {
                    return Err((offset + i, format!("bad variable name '{name}' in '${{{name}}}'")));
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Var(name.to_string()));
                offset += i + 3 + end;
                rest = &inner[end + 1..];
            } else {
                text.push('$');
                offset += i + 1;
                rest = after;
            }
        }
        text.push_str(rest);
        if !text.is_empty() || parts.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// A template with no variables.
    pub fn literal(s: &str) -> Template {
        Template {
            parts: vec![Part::Text(s.to_string())],
        }
    }

    /// Names of the variables used, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text, if the template uses no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders with `vars`; an unknown variable is an error naming it.
    pub fn render(&self, vars: &Vars) -> Result<String, String> {
        self.render_with(vars, |v| v.to_string())
    }

    /// Renders for use inside a regex: variable values are escaped.
    pub fn render_regex(&self, vars: &Vars) -> Result<String, String> {
        self.render_with(vars, regex::escape)
    }

    fn render_with(&self, vars: &Vars, esc: impl Fn(&str) -> String) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match vars.get(v) {
                    Some(val) => out.push_str(&esc(val)),
                    None => return Err(format!("variable '${{{v}}}' is not set")),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("Ping ${i} at $$5 ${c.port}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["i", "c.port"]);
        let vars: Vars = [("i".into(), "3".into()), ("c.port".into(), "80".into())].into();
        assert_eq!(t.render(&vars).unwrap(), "Ping 3 at $5 80");
        assert!(t.render(&Vars::new()).unwrap_err().contains("${i}"));
    }

    #[test]
    fn literal_and_errors() {
        assert_eq!(Template::parse("a $ b").unwrap().as_literal(), Some("a $ b"));
        assert_eq!(Template::parse("").unwrap().as_literal(), Some(""));
        assert!(Template::parse("x ${oops").is_err());
        assert!(Template::parse("${a b}").is_err());
    }

    #[test]
    fn regex_rendering_escapes_values() {
        let t = Template::parse("^${v}$").unwrap();
        let vars: Vars = [("v".into(), "1.5".into())].into();
        assert_eq!(t.render_regex(&vars).unwrap(), "^1\\.5$");
    }
}
