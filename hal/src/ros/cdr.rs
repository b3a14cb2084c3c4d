//! The schema-driven CDR reader: validates and decodes a payload of any type the
//! [`Registry`] can resolve, without knowing the type at compile time.
//!
//! [`Layout`] is a type compiled from its definitions (nested types resolved, empty messages
//! given their one `uint8` member as ROS 2 serializes them). [`walk`] goes through a payload
//! (XCDR1, either byte order, alignment relative to the end of the 4-byte encapsulation
//! header) field by field, checking every length against the bytes that remain before using
//! it, so a hostile length can neither allocate nor read out of bounds; strings must be
//! NUL-terminated UTF-8, bounded strings and sequences within their bounds, and nothing but
//! up to 7 bytes of zero padding may follow the message. A [`Visit`]or sees the fields it
//! asks for; the walk itself allocates nothing, so validation ([`check`]) costs no memory
//! and decoding costs only what the visitor keeps ([`decode`] builds a [`Value`] tree,
//! [`FieldPath`] picks numbers out of a message).
//!
//! Errors carry the byte offset (from the start of the payload, encapsulation included) and
//! the field path, e.g. `offset 52: sensor_msgs/msg/JointState.position: sequence of 1000000
//! elements needs at least 8000000 bytes, 24 remain`.

use super::msgdef::{ArrayKind, BaseType, DefError, Prim, Registry};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A type compiled for the walker.
#[derive(Debug)]
pub struct Layout {
    /// `pkg/msg/Type`
    pub name: String,
    pub fields: Vec<FieldLayout>,
    /// The first field is a `std_msgs/msg/Header` (its stamp is the capture time).
    pub header_first: bool,
    /// Fewest bytes a value can take (alignment aside); ≥ 1 for every type.
    pub min_size: usize,
    /// (size, alignment) when every value has the same bytes layout: only fixed-size fields,
    /// the first one as strictly aligned as any (so padding inside never depends on where the
    /// value starts). Such a value is checked in one step when nobody asks for its fields.
    pub fixed: Option<(usize, usize)>,
}

#[derive(Debug)]
pub struct FieldLayout {
    pub name: Arc<str>,
    pub elem: Elem,
    pub array: ArrayKind,
}

#[derive(Debug, Clone)]
pub enum Elem {
    Prim(Prim),
    String(Option<u32>),
    WString(Option<u32>),
    Msg(Arc<Layout>),
}

impl Elem {
    fn min_size(&self) -> usize {
        match self {
            Elem::Prim(p) => p.size(),
            Elem::String(_) => 5,
            Elem::WString(_) => 4,
            Elem::Msg(l) => l.min_size,
        }
    }
}

impl Registry {
    /// Compile `name` for [`walk`] (checks that everything it uses is defined and not
    /// recursive).
    pub fn layout(&self, name: &str) -> Result<Arc<Layout>, DefError> {
        self.dependencies(name)?; // unknown / recursive / too deep, with the chain
        let mut memo = BTreeMap::new();
        let full = super::msgdef::normalize_name(name).ok_or(DefError::BadName(name.into()))?;
        Ok(self.compile(&full, &mut memo))
    }

    fn compile(&self, name: &str, memo: &mut BTreeMap<String, Arc<Layout>>) -> Arc<Layout> {
        if let Some(l) = memo.get(name) {
            return l.clone();
        }
        let def = self.get(name).expect("checked by dependencies()");
        let mut fields = Vec::new();
        for f in def.wire_fields().iter() {
            let elem = match &f.base {
                BaseType::Prim(p) => Elem::Prim(*p),
                BaseType::String(b) => Elem::String(*b),
                BaseType::WString(b) => Elem::WString(*b),
                BaseType::Msg(m) => Elem::Msg(self.compile(m, memo)),
            };
            fields.push(FieldLayout {
                name: f.name.as_str().into(),
                elem,
                array: f.array,
            });
        }
        let min_size = fields
            .iter()
            .map(|f| match f.array {
                ArrayKind::Single => f.elem.min_size(),
                ArrayKind::Fixed(n) => (n as usize).saturating_mul(f.elem.min_size()),
                ArrayKind::Bounded(_) | ArrayKind::Unbounded => 4,
            })
            .fold(0usize, usize::saturating_add);
        let fixed = fixed_layout(&fields);
        let header_first = matches!(
            fields.first(),
            Some(FieldLayout { elem: Elem::Msg(h), array: ArrayKind::Single, .. })
                if h.name == "std_msgs/msg/Header"
        );
        let l = Arc::new(Layout {
            name: name.to_string(),
            fields,
            header_first,
            min_size,
            fixed,
        });
        memo.insert(name.to_string(), l.clone());
        l
    }
}

/// See [`Layout::fixed`].
fn fixed_layout(fields: &[FieldLayout]) -> Option<(usize, usize)> {
    let elem = |e: &Elem| match e {
        Elem::Prim(p) => Some((p.size(), p.size())),
        Elem::Msg(l) => l.fixed,
        _ => None,
    };
    let mut pos = 0usize;
    let mut max_align = 1;
    let mut first_align = None;
    for f in fields {
        let (size, align) = elem(&f.elem)?;
        let n = match f.array {
            ArrayKind::Single => 1,
            ArrayKind::Fixed(n) => n as usize,
            _ => return None,
        };
        if n == 0 {
            return None;
        }
        first_align.get_or_insert(align);
        max_align = max_align.max(align);
        pos = pos.div_ceil(align) * align;
        pos = pos.checked_add(size.checked_mul(n)?)?;
        if size % align != 0 {
            return None;
        }
    }
    (first_align? == max_align).then_some((pos, max_align))
}

/// Why a payload is not a valid message of its type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {what}")]
pub struct CdrError {
    /// Byte offset in the payload (encapsulation header included).
    pub offset: usize,
    pub what: String,
}

/// One scalar value met by the walk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leaf<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

/// What a walk reports to. Every method has a do-nothing default; a subtree whose
/// `field`/`index` returns false is still checked but not reported.
pub trait Visit {
    /// Entering field `name` of the current message; report it?
    fn field(&mut self, _name: &Arc<str>) -> bool {
        false
    }
    /// Entering element `i` of the current array; report it?
    fn index(&mut self, _i: usize) -> bool {
        true
    }
    /// An array of `len` elements starts (after `field`, before its elements).
    fn array_len(&mut self, _len: usize) {}
    /// Report the elements of the array just entered? (false: only `array_len`)
    fn elements(&mut self) -> bool {
        true
    }
    /// Leaving what the last `field`/`index` that returned true entered.
    fn leave(&mut self) {}
    fn leaf(&mut self, _v: Leaf<'_>) {}
    /// A `uint8`/`byte`/`char` array as one block; return true if handled (otherwise each
    /// element is reported with `index` and `leaf`).
    fn bytes(&mut self, _b: &[u8]) -> bool {
        false
    }
}

/// The visitor that wants nothing: plain validation.
impl Visit for () {}

/// What a successful walk learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// `header.stamp` in ns when the type starts with a Header (0 when unset or negative).
    pub stamp_ns: Option<u64>,
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    little: bool,
}

/// An error still being built: the path is prepended as it bubbles up.
struct Err0 {
    offset: usize,
    path: Vec<String>,
    what: String,
}

type R<T> = Result<T, Box<Err0>>;

impl<'a> Walker<'a> {
    #[cold]
    #[inline(never)]
    fn err(&self, what: impl Into<String>) -> Box<Err0> {
        Box::new(Err0 {
            offset: self.pos + 4,
            path: Vec::new(),
            what: what.into(),
        })
    }

    #[inline(always)]
    fn align(&mut self, n: usize) -> R<()> {
        let pad = (n - self.pos % n) % n;
        if self.b.len() - self.pos < pad {
            return Err(self.err("truncated (alignment padding)"));
        }
        self.pos += pad;
        Ok(())
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let remain = self.b.len() - self.pos;
        if n > remain {
            return Err(self.err(format!("needs {n} bytes, {remain} remain")));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    fn u32(&mut self) -> R<u32> {
        self.align(4)?;
        let s: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    #[inline]
    fn prim(&mut self, p: Prim) -> R<Leaf<'a>> {
        let n = p.size();
        self.align(n)?;
        let s = self.take(n)?;
        Ok(prim_value(p, s, self.little))
    }

    /// A sequence length, checked against what remains and the bound.
    #[inline]
    fn seq_len(&mut self, min_elem: usize, bound: Option<u32>) -> R<usize> {
        self.align(4)?;
        let at = self.pos;
        let n = self.u32()? as usize;
        let remain = self.b.len() - self.pos;
        if let Some(b) = bound
            && n > b as usize
        {
            self.pos = at;
            return Err(self.err(format!("sequence of {n} elements exceeds its bound {b}")));
        }
        if n.saturating_mul(min_elem) > remain {
            self.pos = at; // report the length field's own offset
            return Err(self.err(format!(
                "sequence of {n} elements needs at least {} bytes, {remain} remain",
                n.saturating_mul(min_elem)
            )));
        }
        Ok(n)
    }

    fn string(&mut self, bound: Option<u32>) -> R<&'a str> {
        self.align(4)?;
        let at = self.pos;
        let n = self.u32()? as usize;
        if n == 0 {
            self.pos = at;
            return Err(self.err("string length 0 (must count its NUL terminator)"));
        }
        if let Some(b) = bound
            && n - 1 > b as usize
        {
            self.pos = at;
            return Err(self.err(format!("string of {} bytes exceeds its bound {b}", n - 1)));
        }
        let start = self.pos;
        let s = self.take(n)?;
        if s[n - 1] != 0 {
            self.pos = start;
            return Err(self.err("string is not NUL-terminated"));
        }
        // ROS 2 strings are UTF-8; readers (rosbags, mcap-ros2, cdr) refuse anything else
        match std::str::from_utf8(&s[..n - 1]) {
            Ok(s) => Ok(s),
            Err(_) => {
                self.pos = start;
                Err(self.err("string is not valid UTF-8"))
            }
        }
    }

    fn wstring(&mut self, bound: Option<u32>) -> R<()> {
        let n = self.seq_len(4, bound)?;
        self.take(n * 4).map(|_| ())
    }

    fn message<V: Visit + ?Sized>(&mut self, l: &Layout, v: &mut V, report: bool) -> R<()> {
        if !report && let Some((size, align)) = l.fixed {
            self.align(align)?;
            return self.take(size).map(|_| ());
        }
        for f in &l.fields {
            let rep = report && v.field(&f.name);
            let r = self.field(f, v, rep);
            if rep {
                v.leave();
            }
            r.map_err(|mut e| {
                e.path.push(f.name.to_string());
                e
            })?;
        }
        Ok(())
    }

    fn field<V: Visit + ?Sized>(&mut self, f: &FieldLayout, v: &mut V, report: bool) -> R<()> {
        let n = match f.array {
            ArrayKind::Single => return self.elem(&f.elem, v, report),
            ArrayKind::Fixed(n) => {
                let need = (n as usize).saturating_mul(f.elem.min_size());
                let remain = self.b.len() - self.pos;
                if need > remain {
                    return Err(self.err(format!(
                        "array of {n} elements needs at least {need} bytes, {remain} remain"
                    )));
                }
                n as usize
            }
            ArrayKind::Bounded(b) => self.seq_len(f.elem.min_size(), Some(b))?,
            ArrayKind::Unbounded => self.seq_len(f.elem.min_size(), None)?,
        };
        let report = report && {
            v.array_len(n);
            v.elements()
        };
        if let Elem::Prim(p) = f.elem {
            // one block: check it, then report it if asked
            if n > 0 {
                self.align(p.size())?;
            }
            let block = self.take(n * p.size())?;
            if report {
                let handled = matches!(p, Prim::U8 | Prim::Byte | Prim::Char) && v.bytes(block);
                if !handled {
                    for (i, c) in block.chunks_exact(p.size()).enumerate() {
                        if v.index(i) {
                            v.leaf(prim_value(p, c, self.little));
                            v.leave();
                        }
                    }
                }
            }
            return Ok(());
        }
        for i in 0..n {
            let rep = report && v.index(i);
            let r = self.elem(&f.elem, v, rep);
            if rep {
                v.leave();
            }
            r.map_err(|mut e| {
                e.path.push(format!("[{i}]"));
                e
            })?;
        }
        Ok(())
    }

    fn elem<V: Visit + ?Sized>(&mut self, e: &Elem, v: &mut V, report: bool) -> R<()> {
        match e {
            Elem::Prim(p) => {
                let x = self.prim(*p)?;
                if report {
                    v.leaf(x);
                }
            }
            Elem::String(b) => {
                let s = self.string(*b)?;
                if report {
                    v.leaf(Leaf::Str(s));
                }
            }
            Elem::WString(b) => self.wstring(*b)?,
            Elem::Msg(l) => self.message(l, v, report)?,
        }
        Ok(())
    }
}

#[inline]
fn prim_value(p: Prim, s: &[u8], little: bool) -> Leaf<'static> {
    macro_rules! num {
        ($t:ty) => {{
            let a: [u8; std::mem::size_of::<$t>()] = s.try_into().expect("sized by take");
            if little {
                <$t>::from_le_bytes(a)
            } else {
                <$t>::from_be_bytes(a)
            }
        }};
    }
    match p {
        Prim::Bool => Leaf::Bool(s[0] != 0),
        Prim::Byte | Prim::Char | Prim::U8 => Leaf::UInt(s[0] as u64),
        Prim::I8 => Leaf::Int(s[0] as i8 as i64),
        Prim::I16 => Leaf::Int(num!(i16) as i64),
        Prim::U16 => Leaf::UInt(num!(u16) as u64),
        Prim::I32 => Leaf::Int(num!(i32) as i64),
        Prim::U32 => Leaf::UInt(num!(u32) as u64),
        Prim::I64 => Leaf::Int(num!(i64)),
        Prim::U64 => Leaf::UInt(num!(u64)),
        Prim::F32 => Leaf::Float(num!(f32) as f64),
        Prim::F64 => Leaf::Float(num!(f64)),
    }
}

/// The byte order of a payload from its encapsulation header.
fn encapsulation(payload: &[u8]) -> Result<bool, CdrError> {
    if payload.len() < 4 {
        return Err(CdrError {
            offset: 0,
            what: format!(
                "{} bytes: shorter than the CDR encapsulation header",
                payload.len()
            ),
        });
    }
    match (payload[0], payload[1]) {
        (0, 1) => Ok(true),
        (0, 0) => Ok(false),
        (a, b) => Err(CdrError {
            offset: 0,
            what: format!(
                "encapsulation {a:#04x} {b:#04x} is not plain CDR (XCDR1 BE/LE expected)"
            ),
        }),
    }
}

/// Walk `payload` (CDR with its encapsulation header) as a `layout`, reporting to `v`.
pub fn walk<V: Visit + ?Sized>(
    layout: &Layout,
    payload: &[u8],
    v: &mut V,
) -> Result<Checked, CdrError> {
    let little = encapsulation(payload)?;
    let mut w = Walker {
        b: &payload[4..],
        pos: 0,
        little,
    };
    w.message(layout, v, true).map_err(|e| {
        let mut path = e.path;
        path.reverse();
        let mut p = layout.name.clone();
        for s in path {
            if !s.starts_with('[') {
                p.push('.');
            }
            p.push_str(&s);
        }
        CdrError {
            offset: e.offset,
            what: format!("{p}: {}", e.what),
        }
    })?;
    // serializers may pad the body to a multiple of 4 (or 8)
    let rest = &w.b[w.pos..];
    if rest.len() >= 8 || rest.iter().any(|&b| b != 0) {
        return Err(CdrError {
            offset: w.pos + 4,
            what: format!("{}: {} unexpected trailing bytes", layout.name, rest.len()),
        });
    }
    let stamp_ns = if layout.header_first {
        let b = &payload[4..];
        let rd = |i: usize| {
            let a: [u8; 4] = b[i..i + 4].try_into().expect("walked");
            if little {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let sec = rd(0) as i32;
        let nanosec = rd(4);
        if nanosec >= 1_000_000_000 {
            return Err(CdrError {
                offset: 8,
                what: format!("{}.header.stamp.nanosec: {nanosec} >= 1e9", layout.name),
            });
        }
        Some(if sec < 0 {
            0
        } else {
            sec as u64 * 1_000_000_000 + nanosec as u64
        })
    } else {
        None
    };
    Ok(Checked { stamp_ns })
}

/// Validate a payload (allocates nothing unless it is refused).
pub fn check(layout: &Layout, payload: &[u8]) -> Result<Checked, CdrError> {
    walk(layout, payload, &mut ())
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    /// A `uint8`/`byte`/`char` array.
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Struct(Vec<(Arc<str>, Value)>),
}

impl Value {
    /// The field `name` of a struct.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(f) => f.iter().find(|(n, _)| &**n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Bool(b) => Some(b as u8 as f64),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Every number under this value with its path relative to it (`x`, `position[2]`,
    /// `points[0].positions[1]`), in message order. Strings are left out; byte arrays give
    /// one number per byte.
    pub fn numbers(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        self.numbers_into(String::new(), &mut out);
        out
    }

    fn numbers_into(&self, at: String, out: &mut Vec<(String, f64)>) {
        match self {
            Value::Struct(fields) => {
                for (n, v) in fields {
                    let p = if at.is_empty() {
                        n.to_string()
                    } else {
                        format!("{at}.{n}")
                    };
                    v.numbers_into(p, out);
                }
            }
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    v.numbers_into(format!("{at}[{i}]"), out);
                }
            }
            Value::Bytes(b) => out.extend(
                b.iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{at}[{i}]"), *x as f64)),
            ),
            Value::String(_) => {}
            v => out.push((at, v.as_f64().unwrap_or(f64::NAN))),
        }
    }

    /// As JSON (byte arrays as arrays of numbers, non-finite floats as strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::String(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Struct(f) => J::Object(
                f.iter()
                    .map(|(n, v)| (n.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A compact YAML-like rendering (arrays longer than `max_items` are elided).
    pub fn render(&self, max_items: usize) -> String {
        let mut s = String::new();
        self.render_into(&mut s, 0, max_items);
        s
    }

    fn render_into(&self, s: &mut String, indent: usize, max: usize) {
        use std::fmt::Write;
        let pad = "  ".repeat(indent);
        match self {
            Value::Struct(fields) => {
                for (n, v) in fields {
                    match v {
                        Value::Struct(_) => {
                            let _ = writeln!(s, "{pad}{n}:");
                            v.render_into(s, indent + 1, max);
                        }
                        Value::List(items)
                            if items.iter().any(|i| matches!(i, Value::Struct(_))) =>
                        {
                            let _ = writeln!(s, "{pad}{n}: # {} items", items.len());
                            for (i, it) in items.iter().take(max).enumerate() {
                                let _ = writeln!(s, "{pad}- # [{i}]");
                                it.render_into(s, indent + 1, max);
                            }
                            if items.len() > max {
                                let _ = writeln!(s, "{pad}- ... {} more", items.len() - max);
                            }
                        }
                        v => {
                            let _ = writeln!(s, "{pad}{n}: {}", v.inline(max));
                        }
                    }
                }
            }
            v => {
                let _ = writeln!(s, "{pad}{}", v.inline(max));
            }
        }
    }

    fn inline(&self, max: usize) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => format!("{f}"),
            Value::String(t) => format!("{t:?}"),
            Value::Bytes(b) => {
                let shown: Vec<String> = b.iter().take(max).map(|x| x.to_string()).collect();
                let more = if b.len() > max {
                    format!(", ... ({} bytes)", b.len())
                } else {
                    String::new()
                };
                format!("[{}{more}]", shown.join(", "))
            }
            Value::List(items) => {
                let shown: Vec<String> = items.iter().take(max).map(|x| x.inline(max)).collect();
                let more = if items.len() > max {
                    format!(", ... ({} items)", items.len())
                } else {
                    String::new()
                };
                format!("[{}{more}]", shown.join(", "))
            }
            Value::Struct(f) => {
                let shown: Vec<String> = f
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.inline(max)))
                    .collect();
                format!("{{{}}}", shown.join(", "))
            }
        }
    }
}

/// Builds a [`Value`] tree from the walk's reports.
#[derive(Default)]
struct Builder {
    /// open frames: (field name when in a struct, value so far)
    stack: Vec<(Option<Arc<str>>, Option<Value>)>,
}

impl Visit for Builder {
    fn field(&mut self, name: &Arc<str>) -> bool {
        self.stack.push((Some(name.clone()), None));
        true
    }
    fn index(&mut self, _i: usize) -> bool {
        self.stack.push((None, None));
        true
    }
    fn array_len(&mut self, _len: usize) {
        if let Some(top) = self.stack.last_mut() {
            top.1 = Some(Value::List(Vec::new()));
        }
    }
    fn bytes(&mut self, b: &[u8]) -> bool {
        if let Some(top) = self.stack.last_mut() {
            top.1 = Some(Value::Bytes(b.to_vec()));
        }
        true
    }
    fn leaf(&mut self, v: Leaf<'_>) {
        if let Some(top) = self.stack.last_mut() {
            top.1 = Some(match v {
                Leaf::Bool(x) => Value::Bool(x),
                Leaf::Int(x) => Value::Int(x),
                Leaf::UInt(x) => Value::UInt(x),
                Leaf::Float(x) => Value::Float(x),
                Leaf::Str(x) => Value::String(x.to_string()),
            });
        }
    }
    fn leave(&mut self) {
        let Some((name, v)) = self.stack.pop() else {
            return;
        };
        let v = v.unwrap_or(Value::Struct(Vec::new()));
        if let Some(parent) = self.stack.last_mut() {
            match &mut parent.1 {
                None => {
                    parent.1 = Some(Value::Struct(vec![(name.unwrap_or_else(|| "".into()), v)]))
                }
                Some(Value::Struct(f)) => f.push((name.unwrap_or_else(|| "".into()), v)),
                Some(Value::List(items)) => items.push(v),
                Some(_) => {}
            }
        }
    }
}

/// Decode a whole payload into a [`Value::Struct`].
pub fn decode(layout: &Layout, payload: &[u8]) -> Result<Value, CdrError> {
    let mut b = Builder::default();
    b.stack.push((None, None));
    walk(layout, payload, &mut b)?;
    Ok(b.stack
        .pop()
        .and_then(|(_, v)| v)
        .unwrap_or(Value::Struct(Vec::new())))
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Field(String),
    Index(usize),
}

/// A path into a message: `position`, `points[0].positions`, `linear_acceleration.x`
/// (empty = the whole message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn parse(s: &str) -> Result<FieldPath, String> {
        let mut segs = Vec::new();
        if s.is_empty() {
            return Ok(FieldPath(segs));
        }
        for part in s.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("field path {s:?}: {part:?} is not a field name"));
            }
            segs.push(Seg::Field(name.into()));
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("field path {s:?}: unclosed ["))?;
                let i = rest[1..close].parse::<usize>().map_err(|_| {
                    format!("field path {s:?}: {:?} is not an index", &rest[..=close])
                })?;
                segs.push(Seg::Index(i));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(format!("field path {s:?}: unexpected {rest:?}"));
                }
            }
        }
        Ok(FieldPath(segs))
    }

    /// Check the path against a type: every field exists, indexes only on arrays (fixed
    /// arrays within their size).
    pub fn check_against(&self, layout: &Arc<Layout>) -> Result<(), String> {
        let mut cur = Elem::Msg(layout.clone());
        let mut array: Option<ArrayKind> = None;
        let mut at = layout.name.clone();
        for seg in &self.0 {
            match seg {
                Seg::Field(n) => {
                    if array.is_some() {
                        return Err(format!("{at} is an array: index it, e.g. {at}[0]"));
                    }
                    let Elem::Msg(owner) = &cur else {
                        return Err(format!("{at} has no field {n:?} (it is not a message)"));
                    };
                    let f = owner
                        .fields
                        .iter()
                        .find(|f| &*f.name == n.as_str())
                        .ok_or_else(|| {
                            format!(
                                "{} has no field {n:?} (its fields: {})",
                                owner.name,
                                owner
                                    .fields
                                    .iter()
                                    .map(|f| &*f.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                    at = format!("{at}.{n}");
                    array = (f.array != ArrayKind::Single).then_some(f.array);
                    cur = f.elem.clone();
                }
                Seg::Index(i) => {
                    match array {
                        None => return Err(format!("{at} is not an array")),
                        Some(ArrayKind::Fixed(n)) if *i >= n as usize => {
                            return Err(format!("{at}[{i}]: the array has {n} elements"));
                        }
                        _ => {}
                    }
                    at = format!("{at}[{i}]");
                    array = None;
                }
            }
        }
        Ok(())
    }

    /// What the path selects in a decoded message (`None` if an index is past the end).
    pub fn select<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let mut cur = v;
        for seg in &self.0 {
            cur = match (seg, cur) {
                (Seg::Field(n), v) => v.get(n)?,
                (Seg::Index(i), Value::List(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, s) in self.0.iter().enumerate() {
            match s {
                Seg::Field(n) if k == 0 => write!(f, "{n}")?,
                Seg::Field(n) => write!(f, ".{n}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::examples::{js, samples};
    use crate::msgs::{JointState, RosMessage, WrenchStamped};

    fn layout(name: &str) -> Arc<Layout> {
        Registry::builtin().layout(name).unwrap()
    }

    #[test]
    fn valid_messages_pass_and_give_their_stamp() {
        let stamps = [1_700_000_000_123_456_789u64, 5, 7, 9, 11];
        for ((ty, bytes), stamp) in samples().into_iter().zip(stamps) {
            let c = check(&layout(ty), &bytes).unwrap_or_else(|e| panic!("{ty}: {e}"));
            assert_eq!(c.stamp_ns, Some(stamp), "{ty}");
        }
    }

    #[test]
    fn big_endian_payloads_decode_to_the_same_values() {
        let m = js();
        let le = m.encode().unwrap();
        let be = cdr::serialize::<_, _, cdr::CdrBe>(&m, cdr::Infinite).unwrap();
        let l = layout(JointState::TYPE_NAME);
        let a = decode(&l, &le).unwrap();
        let b = decode(&l, &be).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.get("name"),
            Some(&Value::List(vec![
                Value::String("a".into()),
                Value::String("joint_2".into())
            ]))
        );
        assert_eq!(
            a.get("position"),
            Some(&Value::List(vec![Value::Float(0.1), Value::Float(0.2)]))
        );
        assert_eq!(a.get("velocity"), Some(&Value::List(vec![])));
        let stamp = a.get("header").and_then(|h| h.get("stamp")).unwrap();
        assert_eq!(stamp.get("nanosec"), Some(&Value::UInt(7)));
        assert_eq!(check(&l, &be).unwrap().stamp_ns, Some(7));
    }

    #[test]
    fn numbers_and_field_paths() {
        let l = layout(WrenchStamped::TYPE_NAME);
        let (_, bytes) = samples().remove(3);
        let v = decode(&l, &bytes).unwrap();
        let p = FieldPath::parse("wrench.force").unwrap();
        p.check_against(&l).unwrap();
        let n = p.select(&v).unwrap().numbers();
        assert_eq!(
            n,
            vec![("x".into(), 1.0), ("y".into(), 2.0), ("z".into(), 3.0)]
        );
        assert_eq!(p.to_string(), "wrench.force");
        let e = FieldPath::parse("wrench.forse")
            .unwrap()
            .check_against(&l)
            .unwrap_err();
        assert!(
            e.contains("no field \"forse\"") && e.contains("force, torque"),
            "{e}"
        );
        let jl = layout(JointState::TYPE_NAME);
        FieldPath::parse("position[1]")
            .unwrap()
            .check_against(&jl)
            .unwrap();
        assert!(
            FieldPath::parse("position.x")
                .unwrap()
                .check_against(&jl)
                .is_err()
        );
        assert!(
            FieldPath::parse("header[0]")
                .unwrap()
                .check_against(&jl)
                .is_err()
        );
        let tl = layout("trajectory_msgs/msg/JointTrajectory");
        FieldPath::parse("points[0].positions")
            .unwrap()
            .check_against(&tl)
            .unwrap();
        assert!(
            FieldPath::parse("points.positions")
                .unwrap()
                .check_against(&tl)
                .is_err()
        );
        for bad in ["a..b", "a[", "a[x]", "a]", "[0]", "a[0]b"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
        let il = layout("sensor_msgs/msg/Imu");
        FieldPath::parse("orientation_covariance[8]")
            .unwrap()
            .check_against(&il)
            .unwrap();
        assert!(
            FieldPath::parse("orientation_covariance[9]")
                .unwrap()
                .check_against(&il)
                .is_err()
        );
    }

    #[test]
    fn every_truncation_and_wrong_type_is_an_error() {
        let all = samples();
        for (ty, bytes) in &all {
            let l = layout(ty);
            for cut in 0..bytes.len() {
                // a cut inside trailing padding is still a valid message
                if let Ok(c) = check(&l, &bytes[..cut]) {
                    assert!(bytes.len() - cut < 8, "{ty} cut at {cut} passed: {c:?}");
                }
            }
            for (other, _) in &all {
                if other != ty {
                    assert!(
                        check(&layout(other), bytes).is_err(),
                        "{ty} bytes as {other}"
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_lengths_are_refused_with_offset_and_field() {
        let (_, mut bytes) = samples().remove(2); // JointState
        // the name sequence length sits after header (4+4+4+"cam\0") = offset 4 + 16
        bytes[4 + 16..4 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = check(&layout(JointState::TYPE_NAME), &bytes).unwrap_err();
        assert_eq!(e.offset, 20, "{e}");
        assert!(
            e.what
                .starts_with("sensor_msgs/msg/JointState.name: sequence of 4294967295"),
            "{e}"
        );
        // a bad string inside a nested array names the element
        let (_, mut bytes) = samples().remove(2);
        let at = 4 + 20 + 4 + 4; // "a\0" length (4) + bytes (2) padded → second name's length
        let _ = at;
        let pos = bytes.windows(7).position(|w| w == b"joint_2").unwrap();
        bytes[pos] = 0xff;
        let e = check(&layout(JointState::TYPE_NAME), &bytes).unwrap_err();
        assert!(
            e.what
                .contains("JointState.name[1]: string is not valid UTF-8"),
            "{e}"
        );
        assert_eq!(e.offset, pos, "{e}");
    }

    #[test]
    fn bounds_fixed_arrays_and_empty_messages() {
        let mut r = Registry::builtin().clone();
        r.insert(
            super::super::msgdef::parse_msg("t/B", "string<=3 s\nint16[<=2] v\nuint8[2] f\n")
                .unwrap(),
        );
        let l = r.layout("t/B").unwrap();
        let enc = |s: &str, v: &[i16]| {
            let mut b = vec![0, 1, 0, 0];
            b.extend(((s.len() + 1) as u32).to_le_bytes());
            b.extend(s.as_bytes());
            b.push(0);
            while (b.len() - 4) % 4 != 0 {
                b.push(0);
            }
            b.extend((v.len() as u32).to_le_bytes());
            for x in v {
                b.extend(x.to_le_bytes());
            }
            b.extend([7, 8]);
            b
        };
        let v = decode(&l, &enc("abc", &[1, -2])).unwrap();
        assert_eq!(
            v.get("v"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(-2)]))
        );
        assert_eq!(v.get("f"), Some(&Value::Bytes(vec![7, 8])));
        assert!(
            check(&l, &enc("abcd", &[1]))
                .unwrap_err()
                .what
                .contains("bound 3")
        );
        assert!(
            check(&l, &enc("a", &[1, 2, 3]))
                .unwrap_err()
                .what
                .contains("bound 2")
        );
        // std_msgs/Empty is one byte on the wire
        let e = layout("std_msgs/msg/Empty");
        assert!(check(&e, &[0, 1, 0, 0, 0]).is_ok());
        assert!(check(&e, &[0, 1, 0, 0]).is_err());
        assert_eq!(check(&e, &[0, 1, 0, 0, 0]).unwrap().stamp_ns, None);
        // XCDR2 and parameter lists are refused by name
        let x = check(&e, &[0, 7, 0, 0, 0]).unwrap_err();
        assert!(x.what.contains("XCDR1"), "{x}");
    }

    #[test]
    fn standard_types_compile_with_sane_minimum_sizes() {
        let r = Registry::builtin();
        for name in r.names() {
            let l = r.layout(name).unwrap();
            assert!(l.min_size >= 1, "{name}");
        }
        assert!(layout("sensor_msgs/msg/PointCloud2").header_first);
        assert!(!layout("tf2_msgs/msg/TFMessage").header_first);
    }
}
