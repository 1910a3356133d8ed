//! A school's identifiers as support registers them.

/// Check an NCES school ID: the 12 digits the National Center for Education
/// Statistics assigns (7 of the district, 5 of the school). Returns it as
/// given, trimmed. A spreadsheet that stored it as a number drops a leading
/// zero, which is the usual way to end up with 11.
pub fn nces_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    let digits = id.bytes().filter(u8::is_ascii_digit).count();
    if digits == id.len() && digits == 12 {
        return Ok(id.to_owned());
    }
    let hint = if digits == id.len() && digits == 11 {
        format!(" (a spreadsheet may have dropped a leading zero: try 0{id})")
    } else {
        String::new()
    };
    Err(format!(
        "NCES school ID {id:?} is not 12 digits{hint}; an NCES school ID is the district's 7 digits and the school's 5, for example 062271003230"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nces_ids_are_twelve_digits() {
        assert_eq!(nces_id(" 062271003230 ").unwrap(), "062271003230");
        for bad in [
            "62271003230",
            "0622710032301",
            "06227100323A",
            "",
            "0622-7100323",
        ] {
            assert!(nces_id(bad).is_err(), "{bad}");
        }
        assert!(
            nces_id("62271003230")
                .unwrap_err()
                .contains("try 062271003230")
        );
    }
}
