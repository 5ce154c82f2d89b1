//! "Did you mean …?" for misspelled field names in `castsync.yaml` and manifests.

/// The candidate closest to `typo`, if one is close enough to be a plausible misspelling.
pub fn nearest<'a>(typo: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let typo = typo.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&typo, &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_misspelling_suggests_the_valid_name() {
        let fields = ["version", "prune", "strict", "platform"];
        assert_eq!(nearest("prunne", &fields), Some("prune"));
        assert_eq!(nearest("Strict", &fields), Some("strict"));
        assert_eq!(nearest("platfrom", &fields), Some("platform"));
    }

    #[test]
    fn an_unrelated_name_suggests_nothing() {
        assert_eq!(nearest("zzzzzz", &["version", "prune"]), None);
    }
}
