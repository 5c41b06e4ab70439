//! Typed clients for the Atlassian Cloud APIs reseat calls.
