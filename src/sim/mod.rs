//! The built-in Atlassian Cloud simulator used by `reseat sim`, `reseat demo`, tests and benchmarks.
