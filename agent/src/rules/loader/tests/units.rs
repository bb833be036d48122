//! Small units: priorities, versions, list substitution and text mapping.

use crate::rules::condition::ast::Pos;
use crate::rules::loader::substitute::{joined, substitute};
use crate::rules::loader::text::MappedText;
use crate::rules::loader::{ENGINE_VERSION, InvalidPriority, Priority, Version};

#[test]
fn priorities_parse_like_falco() {
    assert_eq!("WARNING".parse(), Ok(Priority::Warning));
    assert_eq!("info".parse(), Ok(Priority::Informational));
    assert_eq!("Informational".parse(), Ok(Priority::Informational));
    assert_eq!("eMeRgEnCy".parse(), Ok(Priority::Emergency));
    assert_eq!(
        "warn".parse::<Priority>(),
        Err(InvalidPriority("warn".into()))
    );
    assert_eq!(Priority::Informational.as_str(), "Informational");
    assert!(
        Priority::Critical < Priority::Warning,
        "more severe sorts first"
    );
    assert_eq!(Priority::Notice.to_string(), "Notice");
}

#[test]
fn versions() {
    assert_eq!(
        Version::parse("0.57.0"),
        Some(Version {
            major: 0,
            minor: 57,
            patch: 0
        })
    );
    assert_eq!(
        Version::parse("1.2.3-rc1"),
        Some(Version {
            major: 1,
            minor: 2,
            patch: 3
        })
    );
    assert_eq!(Version::parse("1.2"), None);
    assert_eq!(Version::parse("a.b.c"), None);
    assert!(ENGINE_VERSION.satisfies(Version {
        major: 0,
        minor: 63,
        patch: 0
    }));
    assert!(!ENGINE_VERSION.satisfies(Version {
        major: 0,
        minor: 63,
        patch: 1
    }));
    assert!(!ENGINE_VERSION.satisfies(Version {
        major: 1,
        minor: 0,
        patch: 0
    }));
    assert_eq!(ENGINE_VERSION.to_string(), "0.63.0");
}

fn subst(text: &str, name: &str, items: &[&str]) -> (String, bool) {
    let mut mapped = MappedText::synthetic(text, Pos::default());
    let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    let used = substitute(&mut mapped, name, &joined(&items));
    (mapped.as_str().to_string(), used)
}

#[test]
fn substitution_matches_falco_text() {
    assert_eq!(
        subst("proc.name in (l)", "l", &["a", "b c"]),
        ("proc.name in ( a, \"b c\" )".into(), true)
    );
    assert_eq!(
        subst("x.y in (a, l, b)", "l", &[]),
        ("x.y in (a  , b)".into(), true)
    );
    assert_eq!(
        subst("x.y in (l , b)", "l", &[]),
        ("x.y in (   b)".into(), true)
    );
    assert_eq!(subst("l", "l", &["a"]), ("a ".into(), true));
    assert_eq!(subst("x.y = ll", "l", &["a"]), ("x.y = ll".into(), false));
    assert_eq!(
        subst("x.y in (l,l)", "l", &["a"]),
        ("x.y in ( a , a )".into(), true)
    );
    // Falco's search resumes one character late after a substitution at the very start.
    assert_eq!(subst("l l", "l", &["a"]), ("a l".into(), true));
    assert_eq!(
        subst("x.y in ('l')", "l", &["a"]),
        ("x.y in ('l')".into(), false)
    );
    assert_eq!(subst("é in (l)", "l", &["ü"]), ("é in ( ü )".into(), true));
}

#[test]
fn mapped_text_keeps_origins_through_edits() {
    let at = |col| Pos {
        source: 1,
        line: 1,
        col,
    };
    let mut text = MappedText::synthetic("ab", at(1));
    text.append(&MappedText::synthetic("cd", at(5)));
    assert_eq!(text.pos_at_byte(2), at(5));
    text.replace_bytes(1..3, &MappedText::synthetic("XYZ", at(9)));
    assert_eq!(text.as_str(), "aXYZd");
    assert_eq!(text.pos_at_byte(4), at(5));
    let locate = text.locator();
    assert_eq!(
        locate(Pos {
            source: 0,
            line: 1,
            col: 3
        }),
        at(9)
    );
    let trimmed = MappedText::synthetic("  x  ", at(3)).trimmed();
    assert_eq!(trimmed.as_str(), "x");
}

#[test]
fn locator_counts_lines_like_the_parser() {
    // Every character gets its own origin column so the mapping is observable.
    let mut text = MappedText::synthetic("", Pos::default());
    for (i, c) in "a\r\nb\rc\nd".chars().enumerate() {
        let col = u32::try_from(i).unwrap_or(0) + 1;
        text.append(&MappedText::synthetic(
            &c.to_string(),
            Pos {
                source: 0,
                line: 1,
                col,
            },
        ));
    }
    let locate = text.locator();
    assert_eq!(
        locate(Pos {
            source: 0,
            line: 2,
            col: 1
        })
        .col,
        4,
        "b follows a CRLF"
    );
    assert_eq!(
        locate(Pos {
            source: 0,
            line: 3,
            col: 1
        })
        .col,
        6,
        "c follows a lone CR"
    );
    assert_eq!(
        locate(Pos {
            source: 0,
            line: 4,
            col: 1
        })
        .col,
        8,
        "d follows a LF"
    );
}
