# Sourced before the blocks of a page run (see tests/docs.rs and CONTRIBUTING.md, "Docs that
# run"). Each page starts in an empty HOME, with castsync on PATH, an emulator exported as
# CASTARI_API_URL, and the secret values of the examples in variables.
set -o pipefail
cd "$HOME" || exit 98

# `cargo run --release -- ARGS` in the docs runs the binary under test with ARGS: the suite has
# built castsync already. Any other cargo command is not run by the docs test (mark its block
# `<!-- docs-test: skip REASON -->`).
cargo() {
    if [ "$1" = run ] && [ "$2" = --release ] && [ "$3" = -- ]; then
        shift 3
        castsync "$@"
    else
        echo "docs test: \`cargo $*\` is not run here; mark its block with a skip reason" >&2
        return 97
    fi
}

# A secrets repository like the one the README's quickstart makes: your key, agents
# support-bot (OPENAI_API_KEY, ZENDESK_TOKEN) and billing-agent (STRIPE_SECRET_KEY,
# DATABASE_URL), reconciled onto the emulator and committed. Ends inside it.
docs_repository() {
    [ -f "$HOME/.config/castsync/keys.txt" ] || castsync keygen -q >/dev/null || return 98
    mkdir -p "$HOME/agent-secrets" && cd "$HOME/agent-secrets" && git init -q || return 98
    castsync init >/dev/null && castsync git-setup >/dev/null || return 98
    castsync new support-bot >/dev/null && castsync new billing-agent >/dev/null || return 98
    printf 'OPENAI_API_KEY=sk-your-key-here\nZENDESK_TOKEN=your-zendesk-token\n' \
        >>agents/support-bot/.env.example
    printf 'STRIPE_SECRET_KEY=sk_test_placeholder\nDATABASE_URL=postgres://user:pass@host/db\n' \
        >>agents/billing-agent/.env.example
    printf %s "$OPENAI_API_KEY" | castsync set support-bot OPENAI_API_KEY || return 98
    printf %s "$ZENDESK_TOKEN" | castsync set support-bot ZENDESK_TOKEN || return 98
    printf %s "$STRIPE_SECRET_KEY" | castsync set billing-agent STRIPE_SECRET_KEY || return 98
    printf %s "$BILLING_DATABASE_URL" | castsync set billing-agent DATABASE_URL || return 98
    castsync -q reconcile --yes >/dev/null || return 98
    git add -A && git commit -qm "support-bot and billing-agent secrets" || return 98
}
