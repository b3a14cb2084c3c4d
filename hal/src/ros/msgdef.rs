//! ROS 2 message definitions: the `.msg` parser and the type graph ([`Registry`]).
//!
//! A definition is parsed from `.msg` text (ROS 2 syntax: `type name [default]`, constants
//! `TYPE NAME=value`, fixed `T[N]`, bounded `T[<=N]` and unbounded `T[]` arrays, bounded
//! strings `string<=N`, `#` comments; ROS 1 spellings `Header`, `time`, `duration` are read
//! too because rosbag conversions carry them). The registry holds definitions by full name
//! `pkg/msg/Type` and resolves a type into a compiled [`Layout`](super::cdr::Layout) for the
//! CDR reader, refusing unknown and recursive types with the chain that leads to them.
//!
//! Definitions come from three places: the standard interface packages built into this crate
//! (`hal/msgs/`, copied from ROS 2 Jazzy: std_msgs, builtin_interfaces, geometry_msgs,
//! sensor_msgs, nav_msgs, tf2_msgs, trajectory_msgs, diagnostic_msgs, shape_msgs,
//! visualization_msgs) and demotape_msgs; directories of `<pkg>/msg/<Type>.msg` files (an
//! installed workspace's `share/`, `[ros] msg_paths`); and `ros2msg` schema texts embedded in
//! MCAP files ([`Registry::with_schema`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// A primitive ROS 2 field type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prim {
    Bool,
    /// `byte` (IDL octet)
    Byte,
    /// `char` (IDL uint8 in ROS 2)
    Char,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Prim {
    /// Size on the wire (and its CDR alignment).
    pub fn size(self) -> usize {
        match self {
            Prim::Bool | Prim::Byte | Prim::Char | Prim::I8 | Prim::U8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 | Prim::F32 => 4,
            Prim::I64 | Prim::U64 | Prim::F64 => 8,
        }
    }

    fn from_name(s: &str) -> Option<Prim> {
        Some(match s {
            "bool" => Prim::Bool,
            "byte" => Prim::Byte,
            "char" => Prim::Char,
            "int8" => Prim::I8,
            "uint8" => Prim::U8,
            "int16" => Prim::I16,
            "uint16" => Prim::U16,
            "int32" => Prim::I32,
            "uint32" => Prim::U32,
            "int64" => Prim::I64,
            "uint64" => Prim::U64,
            "float32" => Prim::F32,
            "float64" => Prim::F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Prim::Bool => "bool",
            Prim::Byte => "byte",
            Prim::Char => "char",
            Prim::I8 => "int8",
            Prim::U8 => "uint8",
            Prim::I16 => "int16",
            Prim::U16 => "uint16",
            Prim::I32 => "int32",
            Prim::U32 => "uint32",
            Prim::I64 => "int64",
            Prim::U64 => "uint64",
            Prim::F32 => "float32",
            Prim::F64 => "float64",
        }
    }

    /// The `type_id` of `type_description_interfaces/msg/FieldType` (for RIHS01 hashes).
    fn type_id(self) -> u8 {
        match self {
            Prim::I8 => 2,
            Prim::U8 | Prim::Char => 3,
            Prim::I16 => 4,
            Prim::U16 => 5,
            Prim::I32 => 6,
            Prim::U32 => 7,
            Prim::I64 => 8,
            Prim::U64 => 9,
            Prim::F32 => 10,
            Prim::F64 => 11,
            Prim::Bool => 15,
            Prim::Byte => 16,
        }
    }
}

/// The element type of a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseType {
    Prim(Prim),
    /// `string`, or `string<=N`.
    String(Option<u32>),
    /// `wstring`, or `wstring<=N` (UTF-32 code units on the wire).
    WString(Option<u32>),
    /// A nested message, by full name `pkg/msg/Type`.
    Msg(String),
}

/// Whether a field is one value or an array of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayKind {
    Single,
    /// `T[N]`: exactly N, no length on the wire.
    Fixed(u32),
    /// `T[<=N]`: a sequence of at most N.
    Bounded(u32),
    /// `T[]`
    Unbounded,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub base: BaseType,
    pub array: ArrayKind,
    /// The default value as written (not used for decoding).
    pub default: Option<String>,
}

/// A constant (`uint8 FOO=1`), not part of the wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub name: String,
    pub base: BaseType,
    pub value: String,
}

/// A parsed message definition.
#[derive(Clone, Debug, PartialEq)]
pub struct MsgDef {
    /// `pkg/msg/Type`
    pub name: String,
    pub fields: Vec<Field>,
    pub constants: Vec<Constant>,
    /// The `.msg` text as given (comments included), for schema texts.
    pub text: String,
}

impl MsgDef {
    /// The fields as ROS 2 serializes and describes the type: an empty message has one
    /// `uint8 structure_needs_at_least_one_member` (one byte on the wire, and in its hash).
    pub fn wire_fields(&self) -> std::borrow::Cow<'_, [Field]> {
        if self.fields.is_empty() {
            std::borrow::Cow::Owned(vec![Field {
                name: "structure_needs_at_least_one_member".into(),
                base: BaseType::Prim(Prim::U8),
                array: ArrayKind::Single,
                default: None,
            }])
        } else {
            std::borrow::Cow::Borrowed(&self.fields)
        }
    }
}

/// Why a definition or a schema could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefError {
    #[error("{ty} line {line}: {what}")]
    Syntax {
        ty: String,
        line: usize,
        what: String,
    },
    #[error("type {ty} is not defined{}", chain_suffix(.chain))]
    Unknown { ty: String, chain: Vec<String> },
    #[error("type {ty} contains itself: {}", .chain.join(" -> "))]
    Recursive { ty: String, chain: Vec<String> },
    #[error("type {ty}: nesting deeper than {max} levels")]
    TooDeep { ty: String, max: usize },
    #[error("{path}: {what}")]
    Io { path: String, what: String },
    #[error("{0:?} is not a ROS 2 message type name (expected pkg/msg/Type)")]
    BadName(String),
}

fn chain_suffix(chain: &[String]) -> String {
    if chain.is_empty() {
        String::new()
    } else {
        format!(" (needed by {})", chain.join(" -> "))
    }
}

/// Nesting limit when resolving a type (real messages nest < 10 deep).
pub const MAX_DEPTH: usize = 32;

/// `pkg/Type`, `pkg/msg/Type` → `pkg/msg/Type`; `None` if it is not such a name.
pub fn normalize_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.trim().split('/').collect();
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    match parts.as_slice() {
        [pkg, ty] if ok(pkg) && ok(ty) => Some(format!("{pkg}/msg/{ty}")),
        [pkg, "msg", ty] if ok(pkg) && ok(ty) => Some(format!("{pkg}/msg/{ty}")),
        _ => None,
    }
}

/// `sensor_msgs::msg::dds_::Image_` (rmw_zenoh / DDS) → `sensor_msgs/msg/Image`.
pub fn from_dds_name(name: &str) -> Option<String> {
    let (pkg, rest) = name.split_once("::msg::dds_::")?;
    let ty = rest.strip_suffix('_')?;
    normalize_name(&format!("{pkg}/msg/{ty}"))
}

/// `sensor_msgs/msg/Image` → `sensor_msgs::msg::dds_::Image_`.
pub fn to_dds_name(name: &str) -> String {
    let pkg = name.split('/').next().unwrap_or_default();
    let ty = name.rsplit('/').next().unwrap_or_default();
    format!("{pkg}::msg::dds_::{ty}_")
}

fn package_of(full: &str) -> &str {
    full.split('/').next().unwrap_or_default()
}

/// Strip a `#` comment that is not inside a quoted string.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

fn parse_base(tok: &str, pkg: &str) -> Result<BaseType, String> {
    let bounded = |rest: &str| -> Result<Option<u32>, String> {
        if rest.is_empty() {
            return Ok(None);
        }
        let n = rest
            .strip_prefix("<=")
            .ok_or_else(|| format!("{tok:?}: expected <=N after the string type"))?;
        n.parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{tok:?}: bad string bound"))
    };
    if let Some(rest) = tok.strip_prefix("wstring") {
        return bounded(rest).map(BaseType::WString);
    }
    if let Some(rest) = tok.strip_prefix("string") {
        return bounded(rest).map(BaseType::String);
    }
    if let Some(p) = Prim::from_name(tok) {
        return Ok(BaseType::Prim(p));
    }
    Ok(BaseType::Msg(match tok {
        "Header" => "std_msgs/msg/Header".into(),
        "time" => "builtin_interfaces/msg/Time".into(),
        "duration" => "builtin_interfaces/msg/Duration".into(),
        t if !t.contains('/') => normalize_name(&format!("{pkg}/{t}"))
            .ok_or_else(|| format!("{t:?} is not a type name"))?,
        t => normalize_name(t).ok_or_else(|| format!("{t:?} is not a type name"))?,
    }))
}

fn parse_type(tok: &str, pkg: &str) -> Result<(BaseType, ArrayKind), String> {
    let (base, array) = match tok.find('[') {
        None => (tok, ArrayKind::Single),
        Some(i) => {
            let inner = tok[i + 1..]
                .strip_suffix(']')
                .ok_or_else(|| format!("{tok:?}: unclosed ["))?;
            let array = if inner.is_empty() {
                ArrayKind::Unbounded
            } else if let Some(n) = inner.strip_prefix("<=") {
                ArrayKind::Bounded(n.parse().map_err(|_| format!("{tok:?}: bad bound"))?)
            } else {
                ArrayKind::Fixed(inner.parse().map_err(|_| format!("{tok:?}: bad size"))?)
            };
            (&tok[..i], array)
        }
    };
    Ok((parse_base(base, pkg)?, array))
}

fn valid_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Parse the `.msg` text of type `name` (`pkg/msg/Type` or `pkg/Type`).
pub fn parse_msg(name: &str, text: &str) -> Result<MsgDef, DefError> {
    let full = normalize_name(name).ok_or_else(|| DefError::BadName(name.into()))?;
    let pkg = package_of(&full).to_string();
    let mut def = MsgDef {
        name: full.clone(),
        fields: Vec::new(),
        constants: Vec::new(),
        text: text.to_string(),
    };
    let mut names = BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |what: String| DefError::Syntax {
            ty: full.clone(),
            line: i + 1,
            what,
        };
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (ty_tok, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| err(format!("{line:?}: expected `type name`")))?;
        let rest = rest.trim();
        let (base, array) = parse_type(ty_tok, &pkg).map_err(err)?;
        // a constant: NAME=value (the name may be followed by spaces before '=')
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let fname = &rest[..name_end];
        let after = rest[name_end..].trim_start();
        if !valid_field_name(fname) {
            return Err(err(format!("{fname:?} is not a field name")));
        }
        if !names.insert(fname.to_string()) {
            return Err(err(format!("{fname:?} is defined twice")));
        }
        if let Some(value) = after.strip_prefix('=') {
            if array != ArrayKind::Single || matches!(base, BaseType::Msg(_)) {
                return Err(err(format!(
                    "constant {fname} must be a primitive or a string"
                )));
            }
            def.constants.push(Constant {
                name: fname.into(),
                base,
                value: value.trim().to_string(),
            });
        } else {
            def.fields.push(Field {
                name: fname.into(),
                base,
                array,
                default: (!after.is_empty()).then(|| after.to_string()),
            });
        }
    }
    Ok(def)
}

/// Split a `ros2msg` schema (own text, then `====…` / `MSG: pkg/Type` sections) into
/// `(name, text)` pairs, the first being `main`'s.
pub fn split_schema(main: &str, schema: &str) -> Vec<(String, String)> {
    let mut out = vec![(main.to_string(), String::new())];
    for line in schema.lines() {
        let t = line.trim();
        if t.len() >= 3 && t.chars().all(|c| c == '=') {
            out.push((String::new(), String::new()));
            continue;
        }
        if let Some(name) = t.strip_prefix("MSG:")
            && let Some(last) = out.last_mut()
            && last.0.is_empty()
            && last.1.trim().is_empty()
        {
            last.0 = name.trim().to_string();
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out.retain(|(n, t)| !(n.is_empty() && t.trim().is_empty()));
    out
}

/// Definitions by full name: the type graph.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    defs: BTreeMap<String, Arc<MsgDef>>,
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_msgs.rs"));
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The standard interface packages and demotape_msgs.
    pub fn builtin() -> &'static Registry {
        static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        R.get_or_init(|| {
            let mut r = Registry::empty();
            for (name, text) in builtin::MSGS {
                r.insert(parse_msg(name, text).expect("built-in definitions parse (unit test)"));
            }
            for (name, def) in crate::msgs::DEMOTAPE_MSGS {
                r.insert(parse_msg(name, def).expect("demotape_msgs parse (unit test)"));
            }
            r
        })
    }

    /// Add (or replace) one definition.
    pub fn insert(&mut self, def: MsgDef) {
        self.defs.insert(def.name.clone(), Arc::new(def));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<MsgDef>> {
        match self.defs.get(name) {
            Some(d) => Some(d),
            None => self.defs.get(&normalize_name(name)?),
        }
    }

    /// Every type name held, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Add every `<pkg>/msg/<Type>.msg` under `dir` (searched up to three levels deep, so an
    /// install's `share/` and a source tree both work). Returns how many were added.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, DefError> {
        let io = |p: &Path, e: std::io::Error| DefError::Io {
            path: p.display().to_string(),
            what: e.to_string(),
        };
        let mut n = 0;
        let mut stack = vec![(dir.to_path_buf(), 0usize)];
        let mut found = Vec::new();
        while let Some((d, depth)) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
                let entry = entry.map_err(|e| io(&d, e))?;
                let p = entry.path();
                if p.is_dir() {
                    if depth < 3 {
                        stack.push((p, depth + 1));
                    }
                } else if p.extension().is_some_and(|e| e == "msg")
                    && p.parent()
                        .and_then(|q| q.file_name())
                        .is_some_and(|f| f == "msg")
                {
                    found.push(p);
                }
            }
        }
        found.sort();
        for p in found {
            let ty = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let pkg = p
                .parent()
                .and_then(|q| q.parent())
                .and_then(|q| q.file_name())
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            let def = parse_msg(&format!("{pkg}/msg/{ty}"), &text).map_err(|e| match e {
                DefError::Syntax { line, what, .. } => DefError::Syntax {
                    ty: p.display().to_string(),
                    line,
                    what,
                },
                e => e,
            })?;
            self.insert(def);
            n += 1;
        }
        Ok(n)
    }

    /// This registry plus the definitions of a `ros2msg` schema for type `main` (as embedded
    /// in MCAP and in the recorder's schema queryable). The schema's definitions win.
    pub fn with_schema(&self, main: &str, schema: &str) -> Result<Registry, DefError> {
        let mut r = self.clone();
        for (name, text) in split_schema(main, schema) {
            r.insert(parse_msg(&name, &text)?);
        }
        Ok(r)
    }

    /// Check that `name` and everything it refers to is defined and not recursive; returns
    /// the transitive dependencies in first-use order (`name` excluded).
    pub fn dependencies(&self, name: &str) -> Result<Vec<String>, DefError> {
        let full = normalize_name(name).ok_or_else(|| DefError::BadName(name.into()))?;
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let mut chain = Vec::new();
        self.visit(&full, &mut chain, &mut seen, &mut order)?;
        order.retain(|n| n != &full);
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        chain: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), DefError> {
        if chain.iter().any(|c| c == name) {
            let mut c = chain.clone();
            c.push(name.into());
            return Err(DefError::Recursive {
                ty: name.into(),
                chain: c,
            });
        }
        if chain.len() >= MAX_DEPTH {
            return Err(DefError::TooDeep {
                ty: chain[0].clone(),
                max: MAX_DEPTH,
            });
        }
        let def = self.get(name).ok_or_else(|| DefError::Unknown {
            ty: name.into(),
            chain: chain.clone(),
        })?;
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        order.push(name.to_string());
        chain.push(name.into());
        for f in &def.fields {
            if let BaseType::Msg(m) = &f.base {
                self.visit(m, chain, seen, order)?;
            }
        }
        chain.pop();
        Ok(())
    }

    /// The full `ros2msg` schema text of `name` as rosbag2 writes it: its own `.msg` text,
    /// then for each dependency a line of 80 `=`, `MSG: pkg/Type` and its text.
    pub fn schema_text(&self, name: &str) -> Result<String, DefError> {
        let deps = self.dependencies(name)?;
        let own = self.get(name).expect("checked by dependencies");
        let mut s = own.text.trim_end().to_string();
        s.push('\n');
        for d in deps {
            let def = self.get(&d).expect("checked by dependencies");
            s.push_str(crate::msgs::SEPARATOR);
            s.push('\n');
            s.push_str("MSG: ");
            s.push_str(&d.replace("/msg/", "/"));
            s.push('\n');
            s.push_str(def.text.trim_end());
            s.push('\n');
        }
        Ok(s)
    }

    /// The RIHS01 type hash (REP 2011) ROS 2 Iron and later put in rmw_zenoh keys and
    /// rosbag2 channel metadata: SHA-256 of the JSON type description (fields without
    /// defaults, referenced types sorted by name).
    pub fn type_hash(&self, name: &str) -> Result<String, DefError> {
        use sha2::Digest;
        let full = normalize_name(name).ok_or_else(|| DefError::BadName(name.into()))?;
        let mut deps = self.dependencies(&full)?;
        deps.sort();
        let describe = |n: &str| -> String {
            let def = self.get(n).expect("checked by dependencies");
            let fields: Vec<String> = def.wire_fields().iter().map(field_json).collect();
            format!(
                "{{\"type_name\": {}, \"fields\": [{}]}}",
                json_str(n),
                fields.join(", ")
            )
        };
        let json = format!(
            "{{\"type_description\": {}, \"referenced_type_descriptions\": [{}]}}",
            describe(&full),
            deps.iter()
                .map(|d| describe(d))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let digest = sha2::Sha256::digest(json.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("RIHS01_{hex}"))
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn field_json(f: &Field) -> String {
    let (base_id, string_capacity, nested) = match &f.base {
        BaseType::Prim(p) => (p.type_id(), 0, String::new()),
        BaseType::String(None) => (17, 0, String::new()),
        BaseType::WString(None) => (18, 0, String::new()),
        BaseType::String(Some(n)) => (21, *n, String::new()),
        BaseType::WString(Some(n)) => (22, *n, String::new()),
        BaseType::Msg(m) => (1, 0, m.clone()),
    };
    let (offset, capacity) = match f.array {
        ArrayKind::Single => (0u32, 0u32),
        ArrayKind::Fixed(n) => (48, n),
        ArrayKind::Bounded(n) => (96, n),
        ArrayKind::Unbounded => (144, 0),
    };
    format!(
        "{{\"name\": {}, \"type\": {{\"type_id\": {}, \"capacity\": {}, \"string_capacity\": {}, \"nested_type_name\": {}}}}}",
        json_str(&f.name),
        base_id as u32 + offset,
        capacity,
        string_capacity,
        json_str(&nested)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_definition_parses_and_resolves() {
        let r = Registry::builtin();
        assert!(r.len() >= 120, "{}", r.len());
        for name in r.names() {
            r.dependencies(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn syntax_of_ros2_msg_files() {
        let d = parse_msg(
            "pkg/T",
            "# comment\nuint8 MODE_A=1 # trailing\nstring NAME=\"a # b\"\n\
             Header header\nint32[3] fixed\nfloat64[<=4] bounded\nstring<=8 s \"dflt\"\n\
             string<=5[<=2] names\nOther[] others\nfoo/Bar bar\nbool flag true\n",
        )
        .unwrap();
        assert_eq!(d.constants.len(), 2);
        assert_eq!(d.constants[1].value, "\"a # b\"");
        let f: Vec<_> = d
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.base.clone(), f.array))
            .collect();
        assert_eq!(
            f,
            vec![
                (
                    "header",
                    BaseType::Msg("std_msgs/msg/Header".into()),
                    ArrayKind::Single
                ),
                ("fixed", BaseType::Prim(Prim::I32), ArrayKind::Fixed(3)),
                ("bounded", BaseType::Prim(Prim::F64), ArrayKind::Bounded(4)),
                ("s", BaseType::String(Some(8)), ArrayKind::Single),
                ("names", BaseType::String(Some(5)), ArrayKind::Bounded(2)),
                (
                    "others",
                    BaseType::Msg("pkg/msg/Other".into()),
                    ArrayKind::Unbounded
                ),
                (
                    "bar",
                    BaseType::Msg("foo/msg/Bar".into()),
                    ArrayKind::Single
                ),
                ("flag", BaseType::Prim(Prim::Bool), ArrayKind::Single),
            ]
        );
        assert_eq!(d.fields[3].default.as_deref(), Some("\"dflt\""));
        for bad in [
            "int32",
            "int32[ x",
            "int32 9x",
            "in-t32 x",
            "int32 a\nint32 a",
        ] {
            assert!(parse_msg("pkg/T", bad).is_err(), "{bad:?}");
        }
        let e = parse_msg("pkg/T", "int32 a\nfloat64[x] b").unwrap_err();
        assert!(e.to_string().contains("pkg/msg/T line 2"), "{e}");
    }

    #[test]
    fn unknown_and_recursive_types_are_named() {
        let mut r = Registry::empty();
        r.insert(parse_msg("p/A", "p/B b\n").unwrap());
        r.insert(parse_msg("p/B", "p/C[] c\n").unwrap());
        let e = r.dependencies("p/A").unwrap_err();
        assert_eq!(
            e.to_string(),
            "type p/msg/C is not defined (needed by p/msg/A -> p/msg/B)"
        );
        r.insert(parse_msg("p/C", "A a\n").unwrap());
        let e = r.dependencies("p/A").unwrap_err();
        assert!(matches!(e, DefError::Recursive { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("p/msg/A -> p/msg/B -> p/msg/C -> p/msg/A"),
            "{e}"
        );
    }

    #[test]
    fn schema_text_round_trips_through_split() {
        let r = Registry::builtin();
        let s = r.schema_text("sensor_msgs/msg/Imu").unwrap();
        assert!(s.contains("MSG: std_msgs/Header"), "{s}");
        assert!(s.contains("MSG: geometry_msgs/Quaternion"), "{s}");
        let parts = split_schema("sensor_msgs/msg/Imu", &s);
        assert_eq!(
            parts.len(),
            1 + r.dependencies("sensor_msgs/msg/Imu").unwrap().len()
        );
        let r2 = Registry::empty()
            .with_schema("sensor_msgs/msg/Imu", &s)
            .unwrap();
        assert_eq!(r2.schema_text("sensor_msgs/msg/Imu").unwrap(), s);
    }

    #[test]
    fn type_hashes_match_ros2() {
        // the hash rmw_zenoh puts in every std_msgs/String key (ROS 2 Jazzy)
        assert_eq!(
            Registry::builtin()
                .type_hash("std_msgs/msg/String")
                .unwrap(),
            "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
        );
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("a/B").as_deref(), Some("a/msg/B"));
        assert_eq!(normalize_name("a/msg/B").as_deref(), Some("a/msg/B"));
        assert_eq!(normalize_name("a/srv/B"), None);
        assert_eq!(normalize_name("../B"), None);
        assert_eq!(
            from_dds_name("sensor_msgs::msg::dds_::Image_").as_deref(),
            Some("sensor_msgs/msg/Image")
        );
        assert_eq!(
            to_dds_name("sensor_msgs/msg/Image"),
            "sensor_msgs::msg::dds_::Image_"
        );
    }
}
