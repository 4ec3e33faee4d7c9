//! Independent GPT oracles: what `cgpt` (vboot-utils, the tool the gptprio bits come from) and `sgdisk` (gdisk)
//! read from a disk or image. Tests compare these with what signpost reports.

use crate::tool::{ToolRunError, command_line, run_tool};
use snafu::{OptionExt, Snafu, ensure};
use std::path::Path;

#[derive(Debug, Snafu)]
pub enum ToolError {
    #[snafu(context(false), display("{source}"))]
    Run { source: ToolRunError },

    #[snafu(display("`{command}` printed {output:?}, which does not parse"))]
    Unparsable { command: String, output: String },
}

/// The gptprio fields of one entry as a tool reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolFlags {
    pub priority: u8,
    pub tries_left: u8,
    pub successful: bool,
    /// Bits 48–63 (cgpt's `-A`).
    pub high_bits: u16,
}

/// `cgpt show -i N` with `-P`, `-T`, `-S` and `-A`.
pub fn cgpt_flags(disk: &Path, number: u32) -> Result<ToolFlags, ToolError> {
    let field = |flag: &str| -> Result<u64, ToolError> {
        let args = [
            "show",
            "-i",
            &number.to_string(),
            flag,
            &disk.to_string_lossy(),
        ]
        .map(String::from);
        let (command, output) = run("cgpt", &args)?;
        let text = output.trim();
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        };
        parsed.context(UnparsableSnafu { command, output })
    };
    let narrow = |value: u64, command: &str| {
        u8::try_from(value).ok().context(UnparsableSnafu {
            command,
            output: value.to_string(),
        })
    };
    Ok(ToolFlags {
        priority: narrow(field("-P")?, "cgpt show -P")?,
        tries_left: narrow(field("-T")?, "cgpt show -T")?,
        successful: field("-S")? != 0,
        high_bits: u16::try_from(field("-A")?).ok().context(UnparsableSnafu {
            command: "cgpt show -A",
            output: "more than 16 bits",
        })?,
    })
}

/// The attribute bits `sgdisk -A N:show` lists as set (one line per bit: `N:BIT:1 (name)`).
pub fn sgdisk_attribute_bits(disk: &Path, number: u32) -> Result<u64, ToolError> {
    let args = [
        "-A".to_string(),
        format!("{number}:show"),
        disk.to_string_lossy().into_owned(),
    ];
    let (command, output) = run("sgdisk", &args)?;
    let mut bits = 0u64;
    for line in output.lines() {
        let mut fields = line.split(':');
        let (Some(entry), Some(bit), Some(value)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if entry.trim() != number.to_string() {
            continue;
        }
        let bit: u32 = bit.trim().parse().ok().context(UnparsableSnafu {
            command: &command,
            output: line,
        })?;
        ensure!(
            bit < 64 && value.trim_start().starts_with('1'),
            UnparsableSnafu {
                command: &command,
                output: line
            }
        );
        bits |= 1 << bit;
    }
    Ok(bits)
}

/// The fields of [`ToolFlags`] from raw attribute bits, to compare an sgdisk reading with a cgpt one.
pub fn flags_of_bits(bits: u64) -> ToolFlags {
    let flags = signpost::GptPrio::from(bits);
    ToolFlags {
        priority: flags.priority(),
        tries_left: flags.tries_left(),
        successful: flags.successful(),
        // The shift leaves 16 bits.
        high_bits: (bits >> 48) as u16,
    }
}

/// `sgdisk -v`: its report (stdout), which says "No problems found." for a sound table.
pub fn sgdisk_verify(disk: &Path) -> Result<String, ToolError> {
    run(
        "sgdisk",
        &["-v".to_string(), disk.to_string_lossy().into_owned()],
    )
    .map(|(_, output)| output)
}

/// `cgpt show`: the whole table as cgpt prints it.
pub fn cgpt_show(disk: &Path) -> Result<String, ToolError> {
    run(
        "cgpt",
        &["show".to_string(), disk.to_string_lossy().into_owned()],
    )
    .map(|(_, output)| output)
}

/// Runs `program args` and returns the command line (for messages) and its stdout.
fn run(program: &'static str, args: &[String]) -> Result<(String, String), ToolError> {
    let output = run_tool(program, args)?;
    Ok((
        command_line(program, args),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}
