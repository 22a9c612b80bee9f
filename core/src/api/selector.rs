//! Label selectors and field selectors as the apiserver reads them from the
//! `labelSelector` and `fieldSelector` query parameters, and as controllers
//! build them from a `spec.selector`.
//!
//! A [`Selector`] is a conjunction of label requirements (`k=v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`). Parsing checks
//! keys and values against Kubernetes' label syntax and names the bad part
//! in its error. Requirements are kept sorted by key, so [`Selector`]'s
//! `Display` is the canonical string Kubernetes prints (the one that goes
//! in `Scale.status.selector`). The empty selector matches every object.
//!
//! A [`FieldSelector`] is a conjunction of `field=value`, `field==value`
//! and `field!=value` terms; values may be empty and may escape `\,`,
//! `\=` and `\\`. Which fields are supported is the apiserver's business:
//! it inspects [`FieldSelector::requirements`]. A field the object does not
//! have compares as the empty string.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::api::meta::LabelSelector;

/// Why a selector could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid label selector {selector:?}: {reason}")]
    InvalidLabelSelector { selector: String, reason: String },
    #[error("invalid requirement on label key {key:?}: {reason}")]
    InvalidRequirement { key: String, reason: String },
    #[error("invalid field selector {selector:?}: {reason}")]
    InvalidFieldSelector { selector: String, reason: String },
}

/// How a label requirement compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v`
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)`
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>1`, integers only
    GreaterThan,
    /// `k<1`, integers only
    LessThan,
}

/// One condition on one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without duplicates.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and how many
    /// values the operator takes.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
    ) -> Result<Requirement, SelectorError> {
        let key = key.into();
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort();
        values.dedup();
        let error = |reason: String| SelectorError::InvalidRequirement {
            key: key.clone(),
            reason,
        };

        validate_label_key(&key).map_err(error)?;
        match operator {
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    return Err(error("exact-match operators take exactly one value".into()));
                }
            }
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(error(
                        "'in' and 'notin' take a non-empty set of values".into(),
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err(error("existence operators take no values".into()));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 || values[0].parse::<i64>().is_err() {
                    return Err(error("'>' and '<' take exactly one integer value".into()));
                }
            }
        }
        for value in &values {
            validate_label_value(value).map_err(error)?;
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement. A missing label
    /// satisfies `!=`, `notin` and `!k`, and nothing else.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    /// Whether a label's value (`None` when the label is missing) satisfies
    /// this requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let contains = |v: &str| {
            self.values
                .binary_search_by(|probe| probe.as_str().cmp(v))
                .is_ok()
        };
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(contains),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(contains),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(actual)), Ok(bound)) = (
                    value.map(|v| v.parse::<i64>()),
                    self.values[0].parse::<i64>(),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::DoubleEquals => write!(f, "{key}=={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Sorted by key (stable, so two requirements on one key keep order).
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Parses the query-string form, e.g. `app=web,tier in (a,b),!canary`.
    /// Whitespace between tokens is ignored; the empty string is
    /// [`Selector::everything`].
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let tokens = tokenize(text);
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
        };
        let requirements =
            parser
                .parse_all()
                .map_err(|reason| SelectorError::InvalidLabelSelector {
                    selector: text.to_string(),
                    reason,
                })?;
        Ok(Selector::from_requirements(requirements))
    }

    /// `k=v` for every label of a set, as `labels.SelectorFromSet`.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Selector {
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement {
                key: key.clone(),
                operator: Operator::Equals,
                values: vec![value.clone()],
            })
            .collect();
        Selector { requirements }
    }

    /// The selector of a `spec.selector` object: `matchLabels` as `k=v`,
    /// `matchExpressions` with `In`, `NotIn`, `Exists` and `DoesNotExist`.
    /// An empty object selects everything; callers holding an absent
    /// (`None`) selector decide themselves, Kubernetes selects nothing.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &selector.match_labels {
            requirements.push(Requirement::new(key, Operator::Equals, [value.clone()])?);
        }
        for expression in &selector.match_expressions {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::InvalidRequirement {
                        key: expression.key.clone(),
                        reason: format!("{other:?} is not a valid label selector operator"),
                    });
                }
            };
            let values = expression.values.iter().cloned();
            requirements.push(Requirement::new(&expression.key, operator, values)?);
        }
        Ok(Selector::from_requirements(requirements))
    }

    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the labels that `get` looks up (by key) satisfy every
    /// requirement.
    pub fn matches_lookup<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(get(&r.key)))
    }

    /// The value a label must equal, when some requirement on `key` is an
    /// exact match (`k=v`, `k==v` or `k in (v)`); for index lookups.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        self.requirements.iter().find_map(|r| {
            let exact = matches!(r.operator, Operator::Equals | Operator::DoubleEquals)
                || (r.operator == Operator::In && r.values.len() == 1);
            (r.key == key && exact).then(|| r.values[0].as_str())
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Selector, SelectorError> {
        Selector::parse(text)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        Selector::from_label_selector(selector)
    }
}

/// Renders a `spec.selector` object in the query-string form
/// (`app=web,tier in (a,b)`), as used in `labelSelector=` and in
/// `Scale.status.selector`. The empty selector renders as "".
pub fn label_selector_string(selector: &LabelSelector) -> Result<String, SelectorError> {
    Ok(Selector::from_label_selector(selector)?.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A run of characters that are not whitespace or punctuation.
    Word(String),
    OpenParen,
    CloseParen,
    Comma,
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Token::Word(word) => return write!(f, "{word:?}"),
            Token::OpenParen => "(",
            Token::CloseParen => ")",
            Token::Comma => ",",
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Greater => ">",
            Token::Less => "<",
        };
        write!(f, "'{text}'")
    }
}

fn is_punctuation(c: char) -> bool {
    matches!(c, '(' | ')' | ',' | '!' | '=' | '>' | '<')
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let next_is_equals = chars.peek().is_some_and(|&(_, n)| n == '=');
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::OpenParen,
            ')' => Token::CloseParen,
            ',' => Token::Comma,
            '>' => Token::Greater,
            '<' => Token::Less,
            '!' if next_is_equals => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Bang,
            '=' if next_is_equals => {
                chars.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            _ => {
                let mut end = text.len();
                while let Some(&(i, n)) = chars.peek() {
                    if n.is_whitespace() || is_punctuation(n) {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                Token::Word(text[start..end].to_string())
            }
        };
        tokens.push(token);
    }
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    fn at_end_of_requirement(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Comma))
    }

    fn parse_all(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        if self.tokens.is_empty() {
            return Ok(requirements);
        }
        loop {
            requirements.push(self.parse_requirement()?);
            let separator = self.next().cloned();
            match separator {
                None => return Ok(requirements),
                Some(Token::Comma) if self.peek().is_some() => {}
                Some(Token::Comma) => return Err("a ',' must be followed by a requirement".into()),
                Some(other) => return Err(format!("found {other} where ',' was expected")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            let key = self.parse_key()?;
            return Requirement::new(key, Operator::DoesNotExist, []).map_err(|e| e.to_string());
        }

        let key = self.parse_key()?;
        if self.at_end_of_requirement() {
            return Requirement::new(key, Operator::Exists, []).map_err(|e| e.to_string());
        }

        let (operator, values) = match self.next().cloned() {
            Some(Token::Equals) => (Operator::Equals, vec![self.parse_exact_value()?]),
            Some(Token::DoubleEquals) => (Operator::DoubleEquals, vec![self.parse_exact_value()?]),
            Some(Token::NotEquals) => (Operator::NotEquals, vec![self.parse_exact_value()?]),
            Some(Token::Greater) => (Operator::GreaterThan, vec![self.parse_exact_value()?]),
            Some(Token::Less) => (Operator::LessThan, vec![self.parse_exact_value()?]),
            Some(Token::Word(word)) if word == "in" => (Operator::In, self.parse_value_set()?),
            Some(Token::Word(word)) if word == "notin" => {
                (Operator::NotIn, self.parse_value_set()?)
            }
            Some(other) => {
                return Err(format!(
                    "found {other} after key {key:?} where an operator was expected \
                     (=, ==, !=, in, notin, >, <)"
                ));
            }
            None => unreachable!("the end of input was handled as an existence check"),
        };
        Requirement::new(key, operator, values).map_err(|e| e.to_string())
    }

    fn parse_key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) if word != "in" && word != "notin" => Ok(word.clone()),
            Some(other) => Err(format!("found {other} where a label key was expected")),
            None => Err("the selector ends where a label key was expected".into()),
        }
    }

    /// The value after `=`, `==` or `!=`; empty when the requirement ends.
    fn parse_exact_value(&mut self) -> Result<String, String> {
        if self.at_end_of_requirement() {
            return Ok(String::new());
        }
        match self.next() {
            Some(Token::Word(word)) => Ok(word.clone()),
            Some(other) => Err(format!("found {other} where a label value was expected")),
            None => Ok(String::new()),
        }
    }

    /// `(a, b, c)`; an empty place between commas is the empty value.
    fn parse_value_set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(&Token::OpenParen) {
            return Err("'in' and 'notin' must be followed by '('".into());
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Word(word)) if expect_value => {
                    values.push(word.clone());
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Some(Token::CloseParen) => {
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Some(other) => return Err(format!("found {other} in a set of values")),
                None => return Err("a set of values is missing its ')'".into()),
            }
        }
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !is_dns_subdomain(prefix))
    {
        return Err(format!(
            "prefix {prefix:?} must be a DNS subdomain: lowercase letters, digits, '-' \
             and '.', starting and ending with a letter or digit, at most 253 characters"
        ));
    }
    if name.is_empty() || name.len() > 63 || !is_label_name(name) {
        return Err(format!(
            "name {name:?} must be 1 to 63 characters: letters, digits, '-', '_' and '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or a name of at most 63 characters.
fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_name(value)) {
        return Ok(());
    }
    Err(format!(
        "value {value:?} must be at most 63 characters: letters, digits, '-', '_' and '.', \
         starting and ending with a letter or digit"
    ))
}

fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(inner)
}

fn is_dns_subdomain(text: &str) -> bool {
    text.split('.').all(|part| {
        let bytes = part.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || *b == b'-')
    })
}

/// How a field requirement compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`
    Equals,
    /// `field!=value`
    NotEquals,
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    /// Unescaped; may be empty.
    pub value: String,
}

impl FieldRequirement {
    /// Whether a field's value (`None` when the object lacks the field,
    /// compared as "") satisfies this term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let equal = actual.unwrap_or("") == self.value;
        match self.operator {
            FieldOperator::Equals => equal,
            FieldOperator::NotEquals => !equal,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(
            f,
            "{}{operator}{}",
            self.field,
            escape_field_value(&self.value)
        )
    }
}

/// A field selector: every term must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses `a=b,c!=d,e==f`. Values may be empty (`involvedObject.namespace=`)
    /// and may escape `\,`, `\=` and `\\`.
    pub fn parse(text: &str) -> Result<FieldSelector, SelectorError> {
        let error = |reason: String| SelectorError::InvalidFieldSelector {
            selector: text.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        if text.is_empty() {
            return Ok(FieldSelector { requirements });
        }

        for term in split_unescaped_commas(text) {
            let (field, operator, raw_value) = split_field_term(term)
                .ok_or_else(|| error(format!("term {term:?} has no operator (=, ==, !=)")))?;
            let field = field.trim();
            if field.is_empty() {
                return Err(error(format!("term {term:?} has no field name")));
            }
            let value = unescape_field_value(raw_value)
                .map_err(|reason| error(format!("term {term:?}: {reason}")))?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object matches; `get` returns the value of a field by its
    /// selector name (`metadata.name`, `spec.nodeName`), `None` if absent.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches(get(&r.field)))
    }

    /// The value a field must equal, if some term is `field=value`; for
    /// index lookups such as pods by `spec.nodeName`.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(text)
    }
}

fn split_unescaped_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Splits a term at its first unescaped operator, trying `!=`, `==`, `=`
/// at each position.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        let rest = &term[i..];
        for (text, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => return Err(format!("invalid escape sequence '\\{other}'")),
                None => return Err("the value ends with a lone '\\'".into()),
            },
            '=' | ',' => return Err(format!("unescaped '{c}' in the value")),
            _ => value.push(c),
        }
    }
    Ok(value)
}

fn escape_field_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(text: &str) -> Selector {
        Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn every_operator_parses_and_prints_canonically() {
        let cases = [
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a in (y,x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("a", "a"),
            ("!a", "!a"),
            ("a>1", "a>1"),
            ("a<2", "a<2"),
            ("a=", "a="),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse(input).to_string(), canonical, "{input:?}");
        }
    }

    #[test]
    fn requirements_are_sorted_by_key_and_whitespace_is_ignored() {
        let selector = parse("  tier in ( web , db ) , app = shop,!canary ");
        assert_eq!(selector.to_string(), "app=shop,!canary,tier in (db,web)");
        assert_eq!(selector.requirements().len(), 3);
    }

    #[test]
    fn commas_inside_parentheses_do_not_split_requirements() {
        let selector = parse("env in (prod,staging),app=web");
        assert_eq!(selector.requirements().len(), 2);
        assert_eq!(selector.requirements()[1].values(), ["prod", "staging"]);
    }

    #[test]
    fn keys_may_have_a_dns_prefix_and_values_may_be_keywords() {
        assert_eq!(
            parse("app.kubernetes.io/name=in").to_string(),
            "app.kubernetes.io/name=in"
        );
    }

    #[test]
    fn matching_follows_kubernetes_semantics_for_missing_labels() {
        let set = labels(&[("app", "web"), ("tier", "front"), ("rank", "3")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("tier in (front,back)", true),
            ("missing in (x)", false),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("rank>2", true),
            ("rank<3", false),
            ("app>1", false),
            ("app=web,tier=back", false),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).matches(&set), expected, "{text:?}");
        }
    }

    #[test]
    fn malformed_selectors_name_the_bad_part() {
        let cases = [
            ("a in b", "'('"),
            ("a in ()", "non-empty"),
            ("a=b,", "','"),
            ("=b", "'='"),
            ("a=(b)", "'('"),
            ("a b", "\"b\""),
            ("-a=b", "\"-a\""),
            ("a=b c", "\"c\""),
            ("a>x", "integer"),
            ("a in (x", "')'"),
            ("Foo.example/a=b", "\"Foo.example\""),
            ("a=-b", "\"-b\""),
        ];
        for (text, needle) in cases {
            let err = Selector::parse(text).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{text:?} gave {err:?}, expected {needle:?}"
            );
            assert!(
                err.contains(&format!("{text:?}")),
                "{err:?} should quote the selector"
            );
        }
    }

    #[test]
    fn label_selector_objects_convert_and_render() {
        let object = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: vec!["prod".into(), "dev".into()],
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ],
        };
        let selector = Selector::try_from(&object).unwrap();
        assert_eq!(selector.to_string(), "app=web,!canary,env in (dev,prod)");
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "dev"), ("canary", "1")])));
        assert_eq!(
            label_selector_string(&object).unwrap(),
            "app=web,!canary,env in (dev,prod)"
        );
        assert_eq!(
            label_selector_string(&LabelSelector::default()).unwrap(),
            ""
        );
    }

    #[test]
    fn match_labels_render_as_the_query_string_form() {
        let object = LabelSelector {
            match_labels: labels(&[("tier", "web"), ("app", "nginx")]),
            ..Default::default()
        };
        assert_eq!(
            label_selector_string(&object).unwrap(),
            "app=nginx,tier=web"
        );
        assert_eq!(
            parse("app=nginx,tier=web"),
            Selector::from_labels(&object.match_labels)
        );
    }

    #[test]
    fn unknown_match_expression_operators_are_rejected() {
        let object = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: vec!["1".into()],
            }],
            ..Default::default()
        };
        let err = Selector::from_label_selector(&object)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Gt\""), "{err}");
    }

    #[test]
    fn exact_label_matches_are_found_for_indexing() {
        let selector = parse("app in (web),tier=db,x!=y");
        assert_eq!(selector.requires_exact_match("app"), Some("web"));
        assert_eq!(selector.requires_exact_match("tier"), Some("db"));
        assert_eq!(selector.requires_exact_match("x"), None);
    }

    #[test]
    fn field_selectors_parse_all_operators_and_empty_values() {
        let selector =
            FieldSelector::parse("spec.nodeName=node-1,status.phase!=Failed,metadata.name==a")
                .unwrap();
        let terms: Vec<_> = selector
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(
            terms,
            [
                ("spec.nodeName", FieldOperator::Equals, "node-1"),
                ("status.phase", FieldOperator::NotEquals, "Failed"),
                ("metadata.name", FieldOperator::Equals, "a"),
            ]
        );
        let empty = FieldSelector::parse("involvedObject.namespace=").unwrap();
        assert_eq!(empty.requirements()[0].value, "");
        assert_eq!(empty.to_string(), "involvedObject.namespace=");
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selectors_match_through_a_getter() {
        let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        let pod = |node: &'static str, phase: &'static str| {
            move |field: &str| match field {
                "spec.nodeName" => Some(node),
                "status.phase" => Some(phase),
                _ => None,
            }
        };
        assert!(selector.matches(pod("n1", "Running")));
        assert!(!selector.matches(pod("n2", "Running")));
        assert!(!selector.matches(pod("n1", "Failed")));

        let unscheduled = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(unscheduled.matches(|_| None));
        assert_eq!(selector.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(selector.requires_exact_match("status.phase"), None);
    }

    #[test]
    fn field_values_unescape_and_print_escaped() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=y").unwrap();
        assert_eq!(selector.requirements()[0].value, r"a,b=c\d");
        assert_eq!(selector.requirements().len(), 2);
        assert_eq!(selector.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
    }

    #[test]
    fn malformed_field_selectors_name_the_bad_term() {
        for (text, needle) in [
            ("metadata.name", "\"metadata.name\""),
            ("a=b,c", "\"c\""),
            ("=x", "\"=x\""),
            ("a=b=c", "unescaped '='"),
            (r"a=\x", r"'\x'"),
        ] {
            let err = FieldSelector::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }
}
