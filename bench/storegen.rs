//! Fills a davgate store for `bench/footprint.sh` (an example target, built
//! by that script in release).
//!
//! Usage: storegen CONFIG USERS PER_USER CREDS_OUT
//!
//! Creates USERS users with PER_USER app passwords each through davgate's
//! own accounts API, the code path behind `davgate password create` (same
//! records, same events, one durable write per change), and writes
//! `user:password` lines to CREDS_OUT. The only difference from the CLI:
//! the argon2id cost of these hashes is m=8 KiB, t=1, p=1 instead of the
//! configured one (`[hash]` refuses less than 8192 KiB), so that 100k
//! passwords take minutes instead of hours. A stored hash carries its own
//! parameters, so the server verifies these as usual, just faster; each
//! record is 4 bytes shorter than with m=19456 ("m=8" vs "m=19456").

use davgate::accounts::NewPassword;
use davgate::config::Config;
use std::io::Write;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        anyhow::bail!("usage: storegen CONFIG USERS PER_USER CREDS_OUT");
    }
    let (path, users, per_user): (&str, usize, usize) = (&args[1], args[2].parse()?, args[3].parse()?);
    let text = std::fs::read_to_string(path)?;
    let mut config = Config::parse(&text, path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.hash.memory_kib = 8;
    config.hash.iterations = 1;
    config.hash.parallelism = 1;
    config.policy.max_active_passwords = config.policy.max_active_passwords.max(per_user);
    let store = davgate::store::open(&config.store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = davgate::App::new(config, store)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[4])?);
    let started = Instant::now();
    for u in 0..users {
        let user = format!("user{u:05}");
        app.accounts.add_user(&user, "bench").await?;
        for p in 0..per_user {
            let new = NewPassword { name: format!("device {p}"), scope: Default::default(), expires: None };
            let created = app.accounts.create_password(&user, new, "bench").await?;
            writeln!(out, "{user}:{}", created.password.expose())?;
        }
        if (u + 1) % 500 == 0 {
            eprintln!("storegen: {} users, {} passwords, {:.0?}", u + 1, (u + 1) * per_user, started.elapsed());
        }
    }
    out.flush()?;
    eprintln!("storegen: done, {} passwords in {:.1?}", users * per_user, started.elapsed());
    Ok(())
}
