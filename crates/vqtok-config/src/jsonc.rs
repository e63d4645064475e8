//! `//` and `/* */` comments in JSON (the seed's own param.json example has them).
//!
//! Comments are replaced by spaces rather than removed so that the line and column
//! numbers serde_json reports still point into the user's file.

/// Returns `text` with every comment outside string literals blanked out.
/// Newlines inside block comments are kept so positions stay exact.
pub fn strip_comments(text: &str) -> Result<String, (usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match (b, bytes.get(i + 1)) {
            (b'"', _) => {
                in_string = true;
                out.push(b);
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let start = i;
                out.extend_from_slice(b"  ");
                i += 2;
                loop {
                    if i >= bytes.len() {
                        return Err(line_col(text, start));
                    }
                    if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        out.extend_from_slice(b"  ");
                        i += 2;
                        break;
                    }
                    out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced by ASCII spaces, so UTF-8 validity is preserved.
    Ok(String::from_utf8(out).expect("comment stripping keeps UTF-8 intact"))
}

/// 1-based line and column of byte offset `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_block_comments_become_spaces() {
        let src = "{\"a\": 1, // note\n /* multi\nline */ \"b\": \"x//y/*z*/\"}";
        let out = strip_comments(src).unwrap();
        assert_eq!(out.len(), src.len());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "x//y/*z*/");
        assert_eq!(out.matches('\n').count(), src.matches('\n').count());
    }

    #[test]
    fn escaped_quote_does_not_end_string() {
        let out = strip_comments(r#"{"a": "q\"//not a comment"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], "q\"//not a comment");
    }

    #[test]
    fn unterminated_block_comment_reports_its_start() {
        assert_eq!(strip_comments("{\n  /* open").unwrap_err(), (2, 3));
    }
}
