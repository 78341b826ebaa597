//! tac_plus-ng (Marc Huber's event-driven servers): tokenizer, parser for the
//! subset `tacvs import` translates, and translation.

pub fn translate(
    _file: &str,
    _text: &str,
    _opts: &crate::Options,
    _report: &mut crate::Report,
) -> Result<crate::Output, crate::ImportError> {
    Err(crate::ImportError::File { file: _file.into(), msg: "tac_plus-ng: not yet".into() })
}
