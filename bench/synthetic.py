"""A generated zero-dependency crate whose release build takes a while,
for benchmarks that need a realistic compile time."""

from __future__ import annotations

from pathlib import Path


def write_crate(root: Path, modules: int, functions: int = 24, name: str = "synthetic") -> Path:
    """Write the crate; compile time grows with modules x functions."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "1.0.0"\nedition = "2021"\n\n[dependencies]\n'
    )
    lines = ["use std::collections::BTreeMap;", ""]
    for m in range(modules):
        lines.append(f"pub mod m{m} {{")
        lines.append("    use super::BTreeMap;")
        for f in range(functions):
            lines += [
                f"    pub fn f{f}<T: Copy + Into<u64>>(items: &[T], seed: u64) -> u64 {{",
                "        let mut map: BTreeMap<u64, u64> = BTreeMap::new();",
                "        let mut acc = seed;",
                "        for (i, item) in items.iter().enumerate() {",
                f"            let v: u64 = (*item).into().wrapping_mul({f + 3}).rotate_left({(m + f) % 31});",
                "            *map.entry(v % 97).or_insert(0) += v ^ (i as u64);",
                "            acc = acc.wrapping_add(v).wrapping_mul(6364136223846793005);",
                "        }",
                '        let text = format!("{acc:x}-{}", map.len());',
                "        acc ^ text.bytes().map(u64::from).sum::<u64>() ^ map.values().sum::<u64>()",
                "    }",
            ]
        calls = " ^ ".join(f"f{f}(&items, {f}) ^ f{f}(&small, {f})" for f in range(functions))
        lines += [
            "    pub fn run(seed: u64) -> u64 {",
            "        let items: Vec<u64> = (0..64).map(|i| i * seed).collect();",
            "        let small: Vec<u32> = (0..64).map(|i| i as u32).collect();",
            f"        {calls}",
            "    }",
            "}",
        ]
    total = " ^ ".join(f"m{m}::run(seed)" for m in range(modules))
    lines += [
        "fn main() {",
        "    let seed = std::env::args().count() as u64;",
        f'    println!("{{}}", {total});',
        "}",
    ]
    (src / "main.rs").write_text("\n".join(lines) + "\n")
    return root / "Cargo.toml"
