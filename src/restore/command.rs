//! What people type to ask for access back in chat (Slack's `/reseat …`, a Teams message):
//! `restore <product> [justification…]`, read the same way on every channel.

use crate::atlassian::ProductKey;

/// What a message asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `restore [product] [justification…]`.
    Restore {
        product: Option<String>,
        justification: Option<String>,
    },
    /// Anything else: the answer says what reseat understands.
    Help,
}

/// Reads `restore jira [justification]`: the product may be several words (`restore jira
/// service management because …`) when the product table knows them; the rest is the
/// justification.
pub fn parse(text: &str) -> Command {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Command::Help;
    };
    if !first.eq_ignore_ascii_case("restore") {
        return Command::Help;
    }
    let rest = &words[1..];
    if rest.is_empty() {
        return Command::Restore {
            product: None,
            justification: None,
        };
    }
    // The longest run of words the product table knows, else the first word.
    let mut taken = 1;
    for n in (1..=rest.len().min(4)).rev() {
        let candidate = rest[..n].join(" ");
        if ProductKey::from_display_name(&candidate).is_some()
            || ProductKey::parse(&candidate).is_ok_and(|k| k.is_known())
            || ProductKey::parse(&candidate.replace(' ', "-")).is_ok_and(|k| k.is_known())
        {
            taken = n;
            break;
        }
    }
    let product = rest[..taken].join(" ");
    let justification = rest[taken..].join(" ");
    Command::Restore {
        product: Some(product),
        justification: Some(justification).filter(|j| !j.is_empty()),
    }
}
