//! QR codes as inline SVG (no image request, nothing for the CSP to allow).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An `<svg>` element encoding `text`, or a short note when it cannot be
/// encoded (far longer than any URL we make).
pub fn svg(text: &str, label: &'static str) -> String {
    match QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) {
        Ok(code) => {
            let image = code.render::<svg::Color>().min_dimensions(224, 224).quiet_zone(true).build();
            // Drop the XML declaration: the SVG sits inside HTML.
            let start = image.find("<svg").unwrap_or(0);
            image[start..].replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{label}\" "), 1)
        }
        Err(_) => "<p class=\"muted\">This one is too long for a QR code.</p>".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_inline_svg() {
        let s = super::svg("otpauth://totp/davgate:alice?secret=JBSWY3DPEHPK3PXP", "QR code");
        assert!(s.starts_with("<svg role=\"img\" aria-label=\"QR code\" "), "{}", &s[..60]);
        assert!(s.trim_end().ends_with("</svg>"));
    }
}
