//! Plan templates: the config an engine writes for each container differs from the last one
//! only in its per-container values (ids, uuids, a timestamp annotation), so a plan keyed by
//! the config itself never hits under podman or containerd. A template takes those values out:
//!
//! - **holes**: inside JSON strings, every lowercase hex run of 32 characters or more (container,
//!   layer and sandbox ids), every uuid (also with underscores, and after `pod`: kubelet names a
//!   pod's cgroup `pod<uid>`, and `pod<uid with underscores>.slice` under systemd), the pid of
//!   a `/proc/<pid>/ns/` path (a pod's containers join its sandbox's namespaces so), and a
//!   standalone 12-character prefix of a 64-character hole (podman's hostname). Each distinct
//!   value becomes a token of the same length and the same shape (lowercase hex, a uuid's
//!   separators where they were), so every check the planner makes on a string treats the
//!   token as it treats the value;
//! - **blanks**: without hooks (which carry the annotations into the plan), the value of an
//!   annotation the planner does not read ([`crate::READ_ANNOTATIONS`]) is emptied.
//!
//! The template's plan is the plan of the tokenized config; [`Template::fill`] puts the values
//! back, byte for byte (same lengths, so the encoding stays valid). The runtime stores a
//! template only after checking that the filled plan equals the plan of the real config.
//! Owns nothing but this rewriting; pure, like the rest of the planner.

use std::path::{Path, PathBuf};

/// A config with its per-container values taken out, and how to put them back.
#[derive(Debug)]
pub struct Template {
    /// The config with tokens for holes and blanked annotation values.
    pub config: Vec<u8>,
    /// The bundle path with the same tokens.
    pub bundle: PathBuf,
    /// (token, value), whole values first: a prefix hole's token is a prefix of its whole
    /// value's token, so it is filled only where it stands alone.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Template {
    /// Puts the values back wherever their tokens are, in a plan's encoded bytes. Every place
    /// is found in the untouched bytes first (whole tokens before prefixes, none overlapping),
    /// then written: a value never combines with its neighbours into a token filled later. The
    /// places depend only on the template's bytes, which every config of the shape shares, and
    /// were checked when the template was stored.
    pub fn fill(&self, bytes: &mut [u8]) {
        let mut places: Vec<(usize, usize)> = Vec::new();
        for (k, (token, _)) in self.pairs.iter().enumerate() {
            let mut at = 0;
            while let Some(i) = find(&bytes[at..], token) {
                let start = at + i;
                let end = start + token.len();
                if !places
                    .iter()
                    .any(|&(s, p)| start < s + self.pairs[p].0.len() && s < end)
                {
                    places.push((start, k));
                }
                at = start + 1;
            }
        }
        for (start, k) in places {
            let value = &self.pairs[k].1;
            bytes[start..start + value.len()].copy_from_slice(value);
        }
    }

    /// How many distinct values were taken out.
    pub fn holes(&self) -> usize {
        self.pairs.len()
    }
}

/// The template of a config, or None when it has no hole (the plain plan is as good), is not
/// well-formed JSON (planning it reports why), or a token would clash with its text.
pub fn template(config: &[u8], bundle: &Path, read_annotations: &[&str]) -> Option<Template> {
    let strings = scan(config, read_annotations)?;
    // Keys are compared as raw bytes: an escaped key could be "hooks" or an annotation the
    // planner reads in disguise.
    if strings
        .iter()
        .any(|s| s.key && config[s.start..s.end].contains(&b'\\'))
    {
        return None;
    }
    let bundle_text = bundle.to_str()?;
    let mut wholes: Vec<Vec<u8>> = Vec::new();
    let mut shapes: Vec<Shape> = Vec::new();
    // (start, end, hole index, prefix?) for every occurrence.
    let mut found: Vec<(usize, usize, usize, bool)> = Vec::new();
    let mut prefixes: Vec<(usize, usize, bool)> = Vec::new();
    for s in strings.iter().filter(|s| !s.blank) {
        let mut i = s.start;
        while i < s.end {
            let standalone = |at: usize| at == s.start || !config[at - 1].is_ascii_alphanumeric();
            let bounded_left = standalone(i);
            let after_pod = i >= s.start + 3 && &config[i - 3..i] == b"pod" && standalone(i - 3);
            if !(bounded_left || after_pod) || !is_hex(config[i]) {
                i += 1;
                continue;
            }
            let bounded = |end: usize| end == s.end || !config[end].is_ascii_alphanumeric();
            let sep = uuid_separator(&config[i..s.end]).filter(|_| bounded(i + 36));
            let (len, is_uuid) = if sep.is_some() {
                (36, true)
            } else if !bounded_left {
                // After `pod`, only a uuid is a hole.
                i += 1;
                continue;
            } else {
                let run = config[i..s.end].iter().take_while(|&&b| is_hex(b)).count();
                if !bounded(i + run) {
                    i += run;
                    continue;
                }
                (run, false)
            };
            let value = &config[i..i + len];
            // A value without a letter might be read as a number; its token could not be.
            let lettered = value.iter().any(|b| (b'a'..=b'f').contains(b));
            // A pid in `/proc/<pid>/ns/…` (a pod's containers join its sandbox's namespaces
            // so): a path, never a number; its token is digits too.
            let pid = !lettered
                && !s.key
                && (2..=10).contains(&len)
                && i >= s.start + 6
                && &config[i - 6..i] == b"/proc/"
                && config[i + len..s.end].starts_with(b"/ns/");
            if (is_uuid || len >= 32) && lettered && s.key {
                // The planner sorts some maps by key (sysctls, cgroup files, annotations): a
                // token would sort where the value might not.
                return None;
            }
            if (lettered && (is_uuid || len >= 32)) || pid {
                let shape = match sep {
                    Some(sep) => Shape::Uuid(sep),
                    None if pid => Shape::Decimal,
                    None => Shape::Hex,
                };
                let index = match wholes.iter().position(|w| w == value) {
                    Some(k) if shapes[k] == shape => k,
                    // The same digits as a hex hole's: no template rather than two tokens.
                    Some(_) => return None,
                    None => {
                        wholes.push(value.to_vec());
                        shapes.push(shape);
                        wholes.len() - 1
                    }
                };
                found.push((i, i + len, index, false));
            } else if lettered && len == 12 {
                prefixes.push((i, i + len, s.key));
            }
            i += len;
        }
    }
    if wholes.len() > MAX_HOLES {
        return None;
    }
    for (start, end, key) in prefixes {
        let value = &config[start..end];
        if let Some(k) = wholes
            .iter()
            .position(|w| w.len() == 64 && w.starts_with(value))
        {
            if key {
                return None;
            }
            found.push((start, end, k, true));
        }
    }
    if wholes.is_empty() && !strings.iter().any(|s| s.blank) {
        return None;
    }
    let tokens: Vec<Vec<u8>> = (0..wholes.len())
        .map(|k| token(k, wholes[k].len(), shapes[k]))
        .collect();
    if tokens
        .iter()
        .any(|t| find(config, head(t)).is_some() || bundle_text.contains(ascii(head(t))))
    {
        return None;
    }
    let mut edits: Vec<(usize, usize, &[u8])> = found
        .iter()
        .map(|&(s, e, k, prefix)| {
            let t: &[u8] = if prefix { &tokens[k][..12] } else { &tokens[k] };
            (s, e, t)
        })
        .collect();
    edits.extend(
        strings
            .iter()
            .filter(|s| s.blank)
            .map(|s| (s.start, s.end, &b""[..])),
    );
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(config.len());
    let mut at = 0;
    for (s, e, with) in edits {
        out.extend_from_slice(&config[at..s]);
        out.extend_from_slice(with);
        at = e;
    }
    out.extend_from_slice(&config[at..]);
    let mut bundle_tokens = bundle_text.to_string();
    for (w, t) in wholes.iter().zip(&tokens) {
        bundle_tokens = bundle_tokens.replace(ascii(w), ascii(t));
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = tokens.iter().cloned().zip(wholes.clone()).collect();
    for (k, w) in wholes.iter().enumerate() {
        if found.iter().any(|f| f.2 == k && f.3) {
            pairs.push((tokens[k][..12].to_vec(), w[..12].to_vec()));
        }
    }
    Some(Template {
        config: out,
        bundle: PathBuf::from(bundle_tokens),
        pairs,
    })
}

/// More distinct values than this and there is no template (the scan and the fill search for
/// each): no engine writes that many ids into one config.
const MAX_HOLES: usize = 64;

/// The token of hole `k`: lowercase hex, a pattern that names `k` in its first 12 characters
/// (so prefixes differ too), with a uuid's separators if the value had them.
fn token(k: usize, len: usize, shape: Shape) -> Vec<u8> {
    if shape == Shape::Decimal {
        // Nines, then k in the last two digits (holes are fewer than 100).
        let mut t = vec![b'9'; len];
        t[len - 2] = b'0' + (k / 10 % 10) as u8;
        t[len - 1] = b'0' + (k % 10) as u8;
        return t;
    }
    let unit = format!("{:012x}", 0xfe77_ab00_0000u64 + k as u64);
    let mut t: Vec<u8> = unit.bytes().cycle().take(len).collect();
    if let Shape::Uuid(sep) = shape {
        for d in [8, 13, 18, 23] {
            t[d] = sep;
        }
    }
    t
}

/// What a hole's value looks like, and so its token: a hex run, a uuid with its separator, or
/// a pid's digits.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    Hex,
    Uuid(u8),
    Decimal,
}

/// A token's first 12 bytes (all of a shorter one), which name its hole.
fn head(t: &[u8]) -> &[u8] {
    &t[..t.len().min(12)]
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The separator of the uuid `s` starts with: `-`, or `_` (systemd's unit names), never mixed.
fn uuid_separator(s: &[u8]) -> Option<u8> {
    let sep = *s.get(8)?;
    let shaped = s.len() >= 36
        && (sep == b'-' || sep == b'_')
        && s[..36].iter().enumerate().all(|(i, &b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == sep
            } else {
                is_hex(b)
            }
        });
    shaped.then_some(sep)
}

fn ascii(b: &[u8]) -> &str {
    // Tokens and values are hex and dashes.
    std::str::from_utf8(b).unwrap_or("")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A JSON string's contents (between its quotes).
struct JsonString {
    start: usize,
    end: usize,
    /// An object's key, not a value.
    key: bool,
    /// The value of an annotation to empty.
    blank: bool,
}

/// Every string of a JSON document, with the annotation values to blank (none if there are
/// hooks). None if the document is not balanced.
fn scan(json: &[u8], read_annotations: &[&str]) -> Option<Vec<JsonString>> {
    // Per open container: is it an object, is a key expected next, the last key's span.
    struct Frame {
        object: bool,
        expect_key: bool,
        key: (usize, usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut out = Vec::new();
    let mut hooks = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < json.len() && json[j] != b'"' {
                    j += if json[j] == b'\\' { 2 } else { 1 };
                }
                if j >= json.len() {
                    return None;
                }
                let is_key = stack.last().is_some_and(|f| f.object && f.expect_key);
                let key_of = |f: &Frame| &json[f.key.0..f.key.1];
                let mut blank = false;
                if is_key {
                    let depth = stack.len();
                    if let Some(f) = stack.last_mut() {
                        f.key = (start, j);
                        f.expect_key = false;
                    }
                    hooks |= depth == 1 && &json[start..j] == b"hooks";
                } else if stack.len() == 2 && stack[1].object && key_of(&stack[0]) == b"annotations"
                {
                    let key = key_of(&stack[1]);
                    blank = !read_annotations.iter().any(|a| a.as_bytes() == key);
                }
                out.push(JsonString {
                    start,
                    end: j,
                    key: is_key,
                    blank,
                });
                i = j + 1;
                continue;
            }
            b'{' | b'[' => stack.push(Frame {
                object: json[i] == b'{',
                expect_key: json[i] == b'{',
                key: (0, 0),
            }),
            b'}' | b']' => {
                stack.pop()?;
            }
            b',' => {
                if let Some(f) = stack.last_mut() {
                    f.expect_key = f.object;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return None;
    }
    if hooks {
        for s in &mut out {
            s.blank = false;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1af77eb82c825a59142e48fe10b3b59ae254e7402b097a719cfec487581948e4";

    fn config(id: &str, uuid: &str, created: &str) -> String {
        format!(
            r#"{{"hostname":"{}","root":{{"path":"/var/lib/overlay/{id}/merged"}},
            "linux":{{"cgroupsPath":"/libpod_parent/libpod-{id}",
            "namespaces":[{{"type":"network","path":"/run/netns/netns-{uuid}"}}]}},
            "annotations":{{"io.kubernetes.cri-o.Created":"{created}","ferrun.cgroup.shared":"true"}}}}"#,
            &id[..12]
        )
    }

    /// kubelet's pod cgroups: `pod<uid>` under cgroupfs, `pod<uid with underscores>.slice`
    /// under systemd. Two pods' containers of one shape share a template.
    #[test]
    fn kubelet_pod_cgroups_are_holes() {
        let cfg = |uid: &str, id: &str| {
            let slice = uid.replace('-', "_");
            format!(
                r#"{{"a":"/kubepods/besteffort/pod{uid}/{id}","b":"kubepods-besteffort-pod{slice}.slice:cri-containerd:{id}"}}"#
            )
        };
        let (u1, u2) = (
            "6f8b0e7c-1d2a-4b3c-8d4e-5f6a7b8c9d0e",
            "0a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3",
        );
        let id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let (a, b) = (cfg(u1, ID), cfg(u2, id2));
        let ta = template(a.as_bytes(), Path::new("/b"), &[]).expect("template");
        let tb = template(b.as_bytes(), Path::new("/b"), &[]).expect("template");
        assert_eq!(ta.config, tb.config, "one template for both pods");
        assert_eq!(ta.holes(), 3, "the id, the uid, its underscored form");
        for (t, c) in [(&ta, &a), (&tb, &b)] {
            let mut filled = t.config.clone();
            t.fill(&mut filled);
            assert_eq!(&String::from_utf8(filled).expect("utf-8"), c);
        }
        // A pod's container joins its sandbox's namespaces by pid: digits in, digits out.
        let joined = |pid: &str| {
            format!(
                r#"{{"n":[{{"path":"/proc/{pid}/ns/net"}},{{"path":"/proc/{pid}/ns/ipc"}}],"s":"size=65536k","c":"/kubepods/pod{u1}/{ID}"}}"#
            )
        };
        let (ja, jb) = (joined("16613"), joined("20417"));
        let ta = template(ja.as_bytes(), Path::new("/b"), &[]).expect("template");
        let tb = template(jb.as_bytes(), Path::new("/b"), &[]).expect("template");
        assert_eq!(ta.config, tb.config, "one template for both pids");
        let text = String::from_utf8(ta.config.clone()).expect("utf-8");
        assert!(
            text.contains("/proc/99900/ns/net") && text.contains("size=65536k"),
            "{text}"
        );
        for (t, c) in [(&ta, &ja), (&tb, &jb)] {
            let mut filled = t.config.clone();
            t.fill(&mut filled);
            assert_eq!(&String::from_utf8(filled).expect("utf-8"), c);
        }
        // Digits elsewhere stay digits.
        assert!(
            template(
                br#"{"p":"/proc/16613/status","q":"/x/16613/ns/net"}"#,
                Path::new("/b"),
                &[]
            )
            .is_none()
        );
        // Glued to anything but a standalone `pod`, a uuid stays; after `pod`, only a uuid is
        // a hole; separators are never mixed.
        for text in [
            format!(r#"{{"c":"ipod{u1}"}}"#),
            format!(r#"{{"d":"pod{}"}}"#, &ID[..40]),
            r#"{"e":"pod6f8b0e7c-1d2a_4b3c-8d4e-5f6a7b8c9d0e"}"#.to_string(),
        ] {
            assert!(
                template(text.as_bytes(), Path::new("/b"), &[]).is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn two_containers_of_one_shape_share_a_template_and_fill_back() {
        let a = config(
            ID,
            "bef65a0d-70e4-7a35-4877-d45995782186",
            "2026-11-29T00:17:29Z",
        );
        let id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let b = config(
            id2,
            "00c0ffee-1111-2222-3333-444444444444",
            "2026-12-01T10:00:00Z",
        );
        let read = ["ferrun.cgroup.shared"];
        let bundle = |id: &str| PathBuf::from(format!("/run/containers/{id}/userdata"));
        let ta = template(a.as_bytes(), &bundle(ID), &read).expect("template");
        let tb = template(b.as_bytes(), &bundle(id2), &read).expect("template");
        assert_eq!(ta.config, tb.config);
        assert_eq!(ta.bundle, tb.bundle);
        assert_eq!(ta.holes(), 3, "id, its prefix, the uuid");
        let text = String::from_utf8(ta.config.clone()).expect("utf-8");
        assert!(!text.contains(ID) && !text.contains(&ID[..12]), "{text}");
        assert!(
            text.contains(r#""io.kubernetes.cri-o.Created":"""#),
            "{text}"
        );
        assert!(text.contains(r#""ferrun.cgroup.shared":"true""#), "{text}");
        // Filling the template's text gives back each config.
        let mut filled = ta.config.clone();
        tb.fill(&mut filled);
        let want = b.replace("2026-12-01T10:00:00Z", "");
        assert_eq!(String::from_utf8(filled).expect("utf-8"), want);
    }

    #[test]
    fn a_filled_value_never_makes_a_token_with_its_neighbours() {
        // The first hole's value ends where the second hole's token could begin.
        let second = token(1, 64, Shape::Hex);
        let v1 = format!(
            "{}{}",
            "0a".repeat(16),
            std::str::from_utf8(&second[..6]).expect("hex")
        );
        let c = format!(r#"{{"a":"{v1}","b":"{ID}","c":"{}"}}"#, &ID[..12]);
        let t = template(c.as_bytes(), Path::new("/b"), &[]).expect("template");
        let mut body = t.config.clone();
        // The token of v1, then the rest of the second token glued on, as bytes may lie.
        let t0 = token(0, v1.len(), Shape::Hex);
        let glued = [t0.as_slice(), &second[6..12]].concat();
        body.extend_from_slice(&glued);
        t.fill(&mut body);
        let text = String::from_utf8(body).expect("utf-8");
        assert!(
            text.ends_with(&format!(
                "{v1}{}",
                std::str::from_utf8(&second[6..12]).expect("hex")
            )),
            "{text}"
        );
    }

    #[test]
    fn ids_in_keys_escaped_keys_and_digit_only_runs_make_no_template() {
        let key = format!(r#"{{"linux":{{"sysctl":{{"net.{ID}":"1"}}}}}}"#);
        assert!(template(key.as_bytes(), Path::new("/b"), &[]).is_none());
        let escaped = format!(r#"{{"hook\u0073":{{}},"annotations":{{"a":"x"}},"b":"{ID}"}}"#);
        assert!(template(escaped.as_bytes(), Path::new("/b"), &[]).is_none());
        let digits = format!(r#"{{"a":"{}"}}"#, "1".repeat(40));
        assert!(template(digits.as_bytes(), Path::new("/b"), &[]).is_none());
    }

    #[test]
    fn hooks_keep_the_annotations_and_short_or_glued_hex_stays() {
        let c = format!(
            r#"{{"hooks":{{}},"annotations":{{"a":"x"}},"hostname":"x{ID}","env":["abcdef12"]}}"#
        );
        assert!(template(c.as_bytes(), Path::new("/b"), &[]).is_none());
        assert!(template(b"{\"a\":[", Path::new("/b"), &[]).is_none());
    }
}
