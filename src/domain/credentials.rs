//! Passwords rosterd generated for new users, on their way to the people who
//! hand them out: the rows of `new-passwords.csv`. They live in memory, in the
//! one email (or the one file support asked for) that delivers them, and
//! nowhere else; the memory is wiped when the list is dropped.

use zeroize::Zeroize;

/// The columns of `new-passwords.csv`.
pub const HEADER: [&str; 5] = ["Username", "First Name", "Last Name", "School", "Password"];

/// One generated password and whose it is.
pub struct IssuedPassword {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// The school's name, or empty.
    pub school: String,
    pub password: String,
}

/// The passwords one import or reset generated, in file order.
#[derive(Default)]
pub struct Issued {
    rows: Vec<IssuedPassword>,
}

impl Issued {
    pub fn push(&mut self, row: IssuedPassword) {
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `new-passwords.csv`: cells neutralised for spreadsheets like every
    /// CSV rosterd writes (a generated password never starts with a
    /// character that would change). The buffer wipes itself when dropped.
    pub fn to_csv(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = Vec::with_capacity(64 * (self.rows.len() + 1));
        let mut w = super::text::CsvOut::new(&mut out);
        // Writing to memory cannot fail.
        let _ = w.row(HEADER);
        for r in &self.rows {
            let _ = w.row([
                r.username.as_str(),
                &r.first_name,
                &r.last_name,
                &r.school,
                &r.password,
            ]);
        }
        let _ = w.flush();
        drop(w);
        zeroize::Zeroizing::new(out)
    }
}

/// Where the passwords an import generated go.
#[derive(Clone, Copy)]
pub enum Delivery<'a> {
    /// None were generated (or the run applied nothing).
    None,
    /// Attached to the report email as `new-passwords.csv`.
    Attach(&'a Issued),
    /// Written to the file support named (`--passwords-out`); the email only
    /// counts them.
    File,
}

impl Drop for Issued {
    fn drop(&mut self) {
        for r in &mut self.rows {
            r.password.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_header_and_one_row_per_password() {
        let mut issued = Issued::default();
        issued.push(IssuedPassword {
            username: "=ada".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            school: "Lincoln Elementary".into(),
            password: "Kx7mPq2RtZ9a".into(),
        });
        let csv = String::from_utf8(issued.to_csv().to_vec()).unwrap();
        assert_eq!(
            csv,
            "Username,First Name,Last Name,School,Password\n'=ada,Ada,Lovelace,Lincoln Elementary,Kx7mPq2RtZ9a\n"
        );
        assert_eq!(issued.len(), 1);
    }
}
