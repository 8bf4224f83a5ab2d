//! Drawing a KHQR: in the terminal with Unicode half blocks (two modules
//! per character cell, so the code stays square and small enough for a
//! phone camera to read from the screen), as SVG and as PNG. The module
//! matrix comes from the `qrcode` crate; PNG bytes from the `png` crate;
//! both are pure Rust and need no system library.

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light margin around the code in the images (the QR
/// standard's quiet zone).
const QUIET: usize = 4;
/// A narrower margin in the terminal, where every row counts; phone
/// cameras read it fine.
const TERMINAL_QUIET: usize = 2;

/// Why a QR image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The text does not fit in a QR code.
    #[error("the KHQR string does not fit in a QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    /// PNG encoding failed.
    #[error("could not encode the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// The terminal's background, which decides which characters are "ink".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Light text on a dark background (most terminals): light modules are
    /// drawn, dark ones left blank.
    Dark,
    /// Dark text on a light background: dark modules are drawn.
    Light,
}

/// The module matrix (`true` = dark), `width` x `width`, error correction
/// level M as banking apps' own KHQRs use.
fn matrix(qr: &str) -> Result<(usize, Vec<bool>), RenderError> {
    let code = QrCode::with_error_correction_level(qr.as_bytes(), EcLevel::M)?;
    let w = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok((w, dark))
}

/// The QR code as lines of Unicode half blocks (`▀ ▄ █`), with a quiet
/// zone, for a terminal with the given background.
pub fn terminal(qr: &str, background: Background) -> Result<String, RenderError> {
    let (w, dark) = matrix(qr)?;
    let size = w + 2 * TERMINAL_QUIET;
    let is_dark = |x: usize, y: usize| -> bool {
        if x < TERMINAL_QUIET
            || y < TERMINAL_QUIET
            || x >= w + TERMINAL_QUIET
            || y >= w + TERMINAL_QUIET
        {
            return false;
        }
        dark[(y - TERMINAL_QUIET) * w + (x - TERMINAL_QUIET)]
    };
    let ink = |x, y| match background {
        Background::Dark => !is_dark(x, y),
        Background::Light => is_dark(x, y),
    };
    let mut out = String::with_capacity((size + 1) * size.div_ceil(2) * 3);
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let top = ink(x, y);
            // Past the last row counts as quiet zone (light).
            let bottom = if y + 1 < size {
                ink(x, y + 1)
            } else {
                background == Background::Dark
            };
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The QR code as an SVG document (black on white, quiet zone included).
pub fn svg(qr: &str) -> Result<String, RenderError> {
    let code = QrCode::with_error_correction_level(qr.as_bytes(), EcLevel::M)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// The QR code as PNG bytes: 8-bit greyscale, `scale` pixels per module
/// (at least 1), quiet zone included.
pub fn png(qr: &str, scale: u32) -> Result<Vec<u8>, RenderError> {
    let (w, dark) = matrix(qr)?;
    let scale = scale.max(1) as usize;
    let side = (w + 2 * QUIET) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, _) in dark.iter().enumerate().filter(|(_, &d)| d) {
        let (mx, my) = (i % w + QUIET, i / w + QUIET);
        for py in my * scale..(my + 1) * scale {
            pixels[py * side + mx * scale..py * side + (mx + 1) * scale].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        // A QR is at most 177 modules wide, so the side always fits in u32
        // for any sane scale; saturate rather than panic on a silly one.
        let side32 = u32::try_from(side).unwrap_or(u32::MAX);
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use super::*;

    #[test]
    fn the_terminal_code_is_square_in_cells_and_uses_half_blocks() {
        let t = terminal("00020101021129130009shop@devb", Background::Dark).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        let width = lines[0].chars().count();
        assert!(width >= 21 + 2 * TERMINAL_QUIET);
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(t.contains('▀') || t.contains('▄'));
        // The top quiet-zone row is fully light: full blocks on a dark terminal.
        assert!(lines[0].chars().all(|c| c == '█'));
    }

    #[test]
    fn the_svg_is_an_svg_document() {
        let s = svg("hello").unwrap();
        assert!(s.contains("<svg") && s.contains("</svg>"));
    }
}
