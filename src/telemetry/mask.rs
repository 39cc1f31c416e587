//! Masking of personal data for logs: never log a full number or a body.

/// `+8613812345678` → `+86138****5678`: keeps the first six and last four
/// characters of anything longer than ten, stars the rest.
pub fn phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_like_the_house_rule() {
        assert_eq!(super::phone("+8613812345678"), "+86138****5678");
        assert_eq!(super::phone("+12125551234"), "+12125****1234");
        assert_eq!(super::phone("12345"), "*****");
    }
}
