//! Shared code for the corpus workspace binaries.

/// The greeting for `name`, upper-cased when `loud`.
pub fn greeting_for(name: &str, loud: bool) -> String {
    let text = format!("hello from {name}");
    if loud {
        text.to_uppercase()
    } else {
        text
    }
}

/// The default greeting (`hello from shared`), upper-cased when `loud`.
pub fn greeting(loud: bool) -> String {
    greeting_for("shared", loud)
}

/// The version line, `NAME VERSION`.
pub fn version_line(name: &str, version: &str) -> String {
    let mut buffer = itoa::Buffer::new();
    let major = buffer.format(version.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0));
    debug_assert!(version.starts_with(major));
    format!("{name} {version}")
}

/// True when the first command-line argument asks for the version.
pub fn wants_version() -> bool {
    matches!(
        std::env::args().nth(1).as_deref(),
        Some("--version") | Some("-V")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_loud() {
        assert_eq!(greeting(false), "hello from shared");
        assert_eq!(greeting_for("alpha", true), "HELLO FROM ALPHA");
    }
}
