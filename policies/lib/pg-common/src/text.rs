//! PostgreSQL text: LSNs, slot names, identifiers.

/// Parse a PostgreSQL LSN (`16/B374D848`) into a byte position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u32::MAX as u64 && low <= u32::MAX as u64).then_some((high << 32) | low)
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// The replication slot of a member: its name with `-` as `_`, as the lab
/// (and most operators) name them; slot names allow only `[a-z0-9_]`.
pub fn slot_name(member: &str) -> String {
    member.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Whether `name` is a plain SQL identifier, optionally schema-qualified
/// (`runner_write_check`, `public.t1`): safe to put in SQL text unquoted.
pub fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && part.len() <= 63
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(parse_lsn("16/B374D848").unwrap() > parse_lsn("15/FFFFFFFF").unwrap());
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn(""), None);
        assert_eq!(format_lsn(parse_lsn("16/B374D848").unwrap()), "16/B374D848");
    }

    #[test]
    fn names() {
        assert_eq!(slot_name("postgres-cluster-3"), "postgres_cluster_3");
        assert!(plain_identifier("runner_write_check"));
        assert!(plain_identifier("public.orders"));
        assert!(!plain_identifier("orders; DROP TABLE x"));
        assert!(!plain_identifier("Orders"));
        assert!(!plain_identifier("a.b.c"));
    }
}
