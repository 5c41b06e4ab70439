//! Link tokens: how many can be signed and verified per second on one core.
//! Run with `cargo bench --bench tokens`; the figures go in `docs/benchmarks.md`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use reseat::notify::{KeyRing, LinkSigner, Purpose, TokenClaims};

fn measure(name: &str, iterations: u32, mut op: impl FnMut(u32)) {
    // Warm up caches and the allocator.
    for n in 0..iterations / 10 {
        op(n);
    }
    let start = Instant::now();
    for n in 0..iterations {
        op(n);
    }
    let elapsed = start.elapsed();
    let per_op = elapsed / iterations;
    let per_sec = f64::from(iterations) / elapsed.as_secs_f64();
    println!(
        "{name:<28} {iterations:>8} iterations  {:>8.2} µs/op  {per_sec:>12.0} ops/s",
        per_op.as_secs_f64() * 1e6
    );
}

fn main() {
    let iterations: u32 = std::env::var("TOKENS_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            200_000
        } else {
            // `cargo test --all-targets` runs this in test mode: a smoke run only.
            1_000
        });
    let signer = LinkSigner::new(
        KeyRing::new()
            .with_verify_key("old", &[1u8; 48])
            .with_signing_key("k2", &[2u8; 48]),
        "https://reseat.example.com",
    );
    let now = Utc::now();
    let claims = TokenClaims {
        token_id: "q4n1Zc0bX1d8qQk0V4T3yA".into(),
        purpose: Purpose::Restore,
        account_id: "5b10ac8d82e05b22cc7d4ef5".into(),
        product: "jira-software".into(),
        site: "acme.atlassian.net".into(),
        expires_at: now.timestamp_millis() + 30 * 86_400_000,
        request_id: None,
        decision: None,
        key_id: String::new(),
    };
    let token = signer.sign(&claims).unwrap();
    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(signer.verify(&tampered, Purpose::Restore, now).is_err());

    println!("token length: {} bytes", token.len());
    measure("sign", iterations, |_| {
        black_box(signer.sign(black_box(&claims)).unwrap());
    });
    measure("verify (valid)", iterations, |_| {
        black_box(
            signer
                .verify(black_box(&token), Purpose::Restore, now)
                .unwrap(),
        );
    });
    measure("verify (bad signature)", iterations, |_| {
        black_box(
            signer
                .verify(black_box(&tampered), Purpose::Restore, now)
                .unwrap_err(),
        );
    });
}
