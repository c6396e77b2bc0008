//! The event loop at the XML level: tags, text, comments and CDATA sections read in place,
//! references resolved, well-formedness checked, before any of it means KML.
//!
//! Apart from what the elements mean (`mod.rs`) so that each can be read alone; the byte-level
//! scanning under both is in `scan.rs`.

use super::*;
use quick_xml::events::attributes::AttrError;

impl Document<'_> {
    pub(super) fn run<R: Read>(&mut self, reader: &mut Reader<Tracked<R>>) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            self.check_cancel()?;
            self.read_in_place(reader)?;
            self.emitter.flush_warnings(reader.get_mut());
            self.pump_text(reader)?;
            self.emitter.flush_warnings(reader.get_mut());
            if self.read_tag(reader)? {
                self.emitter.flush_warnings(reader.get_mut());
                continue;
            }
            buf.clear();
            let before = reader.buffer_position();
            reader.get_mut().limit(Some(before + MAX_MARKUP));
            let event = reader.read_event_into(&mut buf);
            reader.get_mut().limit(None);
            let event = match event {
                Ok(event) => event,
                Err(quick_xml::Error::Io(e)) if e.get_ref().is_some_and(|i| i.is::<TooLong>()) => {
                    return self.markup_too_long(before);
                }
                Err(e) => {
                    self.emitter.error_offset = Some(reader.error_position());
                    return Err(xml_error(e));
                }
            };
            let at = reader.buffer_position();
            match event {
                // `read_tag` reads every tag before quick-xml gets to it; these three arms
                // keep a tag that quick-xml did read (none today) on the same path.
                Event::Start(e) => {
                    self.check_attributes(&e, before)?;
                    self.start(&e, local_start(e.name().into_inner()), before)?;
                }
                Event::Empty(e) => {
                    self.check_attributes(&e, before)?;
                    self.start(&e, local_start(e.name().into_inner()), before)?;
                    self.end(at)?;
                }
                Event::End(e) => self.end_tag(e.name().into_inner(), before, at)?,
                Event::Text(t) => {
                    // Only reached if quick-xml read text itself; treat it the same way.
                    let bytes = t.into_inner();
                    self.text(bytes.as_bytes(), at)?;
                }
                Event::CData(c) => {
                    if self.depth() == 0 {
                        return self.fail_at(at, "CDATA outside the root element");
                    }
                    let bytes = c.into_inner();
                    self.check_chars(bytes.as_bytes(), at)?;
                    self.deliver(bytes.as_bytes(), at)?;
                }
                Event::GeneralRef(r) => {
                    if self.depth() == 0 {
                        return self.fail_at(before, "reference outside the root element");
                    }
                    let mut utf8 = [0u8; 4];
                    if let Some(ch) = self.resolve_reference(&r, before)? {
                        self.deliver(ch.encode_utf8(&mut utf8).as_bytes(), before)?;
                    }
                }
                Event::Decl(_) if before != 0 => {
                    return self
                        .fail_at(before, "the XML declaration is allowed only at the start");
                }
                Event::DocType(d) => self.entities = declared_entities(&d.into_inner()),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
                Event::Eof => break,
            }
            self.emitter.flush_warnings(reader.get_mut());
        }
        let end = reader.buffer_position();
        if let Some(name) = (self.depth() > 0).then(|| self.open.name(0).to_string()) {
            return self.fail_at(
                end,
                &format!("unexpected end of file: <{name}> is not closed"),
            );
        }
        if !self.root_seen {
            return self.fail_at(end, "no root element: the file is empty or not XML");
        }
        Ok(())
    }

    /// Read the tags and texts that lie whole in the buffer, where they are, up to the first
    /// thing that needs more: a text or tag that runs past the buffer's end, a reference, a
    /// comment, CDATA section or other `<!`/`<?` markup, or a warning to hand over. The
    /// rest of the loop in [`Document::run`] reads those.
    ///
    /// Most of a KML file is short tags and the line breaks between them: going round the
    /// whole loop for each, with its buffer look-ups, warning and cancel checks, cost more
    /// than reading them.
    fn read_in_place<R: Read>(&mut self, reader: &mut Reader<Tracked<R>>) -> Result<(), Error> {
        let base = reader.buffer_position();
        let chunk = reader.get_mut().fill_buf().map_err(|e| io_error(e, None))?;
        let (used, result) = self.events_in(chunk, base);
        reader.stream().consume(used);
        result
    }

    /// The events of [`Document::read_in_place`] in `chunk`, which starts at offset `base`:
    /// how many bytes they took, and how the last one went.
    fn events_in(&mut self, chunk: &[u8], base: u64) -> (usize, Result<(), Error>) {
        let mut i = 0;
        loop {
            // Most of a `<coordinates>` text is taken by the tokenizer's quick look, which
            // also tells that its bytes are plain: the search for the text's end starts after.
            if self.coordinates.is_some() && self.utf8_carry.is_empty() {
                let mut out = CoordinatesOut {
                    emitter: &mut self.emitter,
                    seq: &mut self.coord_seq,
                };
                match self.tokenizer.quick_run(chunk, i, &mut out) {
                    Ok(reached) => i = reached,
                    Err(e) => return (i, Err(e)),
                }
                if !self.emitter.warnings.is_empty() {
                    return (i, Ok(()));
                }
            }
            let run = text_run(&chunk[i..]);
            if !run.stop {
                return (i, Ok(()));
            }
            let n = run.len;
            if n > 0 {
                let piece = &chunk[i..i + n];
                let offset = base + i as u64;
                // As in `pump_text`: white space nobody takes is skipped.
                let unwanted = self.coordinates.is_none()
                    && self.capture.is_none()
                    && self.utf8_carry.is_empty()
                    && piece.iter().all(|&b| is_xml_space(b));
                if !unwanted {
                    // Plain text passes `check_chars` unless a character is waiting to be
                    // completed.
                    if !(run.plain && self.utf8_carry.is_empty()) {
                        if let Err(e) = self.check_chars(piece, offset) {
                            return (i, Err(e));
                        }
                    }
                    if let Err(e) = self.text(piece, offset) {
                        return (i, Err(e));
                    }
                }
                i += n;
                if !self.utf8_carry.is_empty() {
                    let result =
                        self.fail_at(base + i as u64, "invalid UTF-8: incomplete sequence");
                    return (i, result);
                }
                if !self.emitter.warnings.is_empty() {
                    return (i, Ok(()));
                }
            }
            if let Some((used, result)) = self.track_leaf(&chunk[i..], base + i as u64) {
                i += used;
                if result.is_err() || !self.emitter.warnings.is_empty() {
                    return (i, result);
                }
                continue;
            }
            // A reference, or markup that is not a tag, or not known to be one yet.
            if chunk[i] == b'&' || matches!(chunk.get(i + 1), None | Some(b'!' | b'?')) {
                return (i, Ok(()));
            }
            let Some(span) = tag_span(&chunk[i..]) else {
                return (i, Ok(()));
            };
            let before = base + i as u64;
            let used = span.len();
            let result = self.tag(&chunk[i..i + used], span, before, before + used as u64);
            i += used;
            if result.is_err() || !self.emitter.warnings.is_empty() {
                return (i, result);
            }
        }
    }

    /// A `<when>` or `<gx:coord>` child of the gx:Track being read, with plain text and an
    /// end tag right after it, read at once from `bytes` (which starts at offset `before`):
    /// how many bytes it took and how it went. `None` leaves it to the tags and text one by
    /// one, which give what this gives (`track_children_read_whole_or_tag_by_tag_alike` in
    /// `tests/reader.rs` holds it to that).
    ///
    /// A track's rows are two such elements each, and going through their four tags and two
    /// texts one by one cost three times what a `<coordinates>` row costs.
    #[inline(always)]
    fn track_leaf(&mut self, bytes: &[u8], before: u64) -> Option<(usize, Result<(), Error>)> {
        let depth = self.depth();
        if self.track.as_ref()?.depth != depth
            || self.capture.is_some()
            || self.coordinates.is_some()
            || self.stray.is_some()
            || self.location.is_some()
            || self.field.is_some()
            || !self.utf8_carry.is_empty()
            // Let `start` fail the file.
            || depth >= MAX_DEPTH
            || self.open.names.len() > MAX_OPEN_NAME_BYTES
        {
            return None;
        }
        let when = begins(bytes, b"<when>");
        if !when && !begins(bytes, b"<gx:coord>") {
            return None;
        }
        let open = if when {
            "<when>".len()
        } else {
            "<gx:coord>".len()
        };
        let run = text_run(&bytes[open..]);
        let end = open + run.len;
        let close = if when {
            begins(&bytes[end..], b"</when>").then_some("</when>".len())
        } else {
            begins(&bytes[end..], b"</gx:coord>").then_some("</gx:coord>".len())
        };
        // Plain text is ASCII without control characters: it needs no check.
        let (true, true, Some(close)) = (run.stop, run.plain, close) else {
            return None;
        };
        // SAFETY: plain text is ASCII.
        let text = unsafe { std::str::from_utf8_unchecked(&bytes[open..end]) };
        let used = end + close;
        // A CR would have had its newline normalised. It changes no value, so it matters only
        // where it stays in the text: inside a time, or in the warning about an odd gx:coord.
        let result = if when {
            let time = trim_xml_space(text);
            if has_cr(time.as_bytes()) {
                return None;
            }
            self.track_when(time)
        } else {
            let quick = quick_words_in(text, &bytes[open..]);
            if quick.is_none() && has_cr(text.as_bytes()) {
                return None;
            }
            self.coord_words(before + used as u64, depth, text, quick)
        };
        Some((used, result))
    }

    /// Read a start, end or empty-element tag, if that is what comes next (`false` for other
    /// markup and at the end of input, which quick-xml reads).
    ///
    /// quick-xml's event path was a quarter of the reader's time on markup-heavy KML: it
    /// copies every tag through its own buffer and keeps its own stack of open names. Here a
    /// tag is found with the same quote-aware search for `>`, its attributes are checked by
    /// quick-xml's own attribute parser, and the open names are kept once, by
    /// [`OpenElements`]. The events and errors are the ones quick-xml gives.
    pub(super) fn read_tag<R: Read>(
        &mut self,
        reader: &mut Reader<Tracked<R>>,
    ) -> Result<bool, Error> {
        let before = reader.buffer_position();
        let head = reader
            .get_mut()
            .fill_at_least(2)
            .map_err(|e| io_error(e, None))?;
        if head.len() < 2 || head[0] != b'<' || matches!(head[1], b'!' | b'?') {
            return Ok(false);
        }
        // `head` is all of the buffer that is left, and most tags lie whole in it: read them
        // where they are.
        if let Some(span) = tag_span(head) {
            let used = span.len();
            let result = self.tag(&head[..used], span, before, before + used as u64);
            reader.stream().consume(used);
            return result.map(|()| true);
        }
        let mut quote = None;
        self.tag.clear();
        loop {
            let mut stream = reader.stream();
            let chunk = stream.fill_buf().map_err(|e| io_error(e, None))?;
            if chunk.is_empty() {
                let error = match quote {
                    Some(b'"') => SyntaxError::UnclosedDoubleQuotedAttributeValue,
                    Some(_) => SyntaxError::UnclosedSingleQuotedAttributeValue,
                    None => SyntaxError::UnclosedTag,
                };
                self.emitter.error_offset = Some(before);
                return Err(xml_error(quick_xml::Error::Syntax(error)));
            }
            let (used, closed) = tag_end(chunk, &mut quote);
            if (self.tag.len() + used) as u64 > MAX_MARKUP {
                return self.markup_too_long(before);
            }
            self.tag.extend_from_slice(&chunk[..used]);
            stream.consume(used);
            if closed {
                break;
            }
        }
        let at = reader.buffer_position();
        let tag = std::mem::take(&mut self.tag);
        let result = self.tag(&tag, TagSpan::of(&tag), before, at);
        self.tag = tag;
        result.map(|()| true)
    }

    /// A whole tag, `<` to `>`, that starts at `before` and ends at `at`; `span` is what the
    /// search for its end learnt of it. Inlined into the loop that reads tags in place: its
    /// entry and exit cost as much as the rest of it.
    #[inline(always)]
    pub(super) fn tag(
        &mut self,
        tag: &[u8],
        span: TagSpan,
        before: u64,
        at: u64,
    ) -> Result<(), Error> {
        let text = if span.ascii() {
            // SAFETY: ASCII is valid UTF-8. Tags are short and nearly always ASCII, and
            // `str::from_utf8` cost 4 % of a conversion here.
            unsafe { std::str::from_utf8_unchecked(tag) }
        } else {
            match std::str::from_utf8(tag) {
                Ok(text) => text,
                Err(e) => return self.fail_at(before + e.valid_up_to() as u64, "invalid UTF-8"),
            }
        };
        let content = &text[1..text.len() - 1];
        if let Some(name) = content.strip_prefix('/') {
            // White space may follow the name of an end tag; most have none.
            if span.space as usize == tag.len() {
                return self.end_tag(name, before, at);
            }
            let end = name
                .bytes()
                .rposition(|b| !is_xml_space(b))
                .map_or(0, |i| i + 1);
            let name = &name[..end];
            return self.end_tag(name, before, at);
        }
        let (content, empty) = match content.strip_suffix('/') {
            Some(content) => (content, true),
            None => (content, false),
        };
        // The name ends at the first white space, which is not the `<` at index 0.
        let name_len = (span.space as usize - 1).min(content.len());
        let element = BytesStart::from_content(content, name_len);
        // Nothing after the name, nothing to check: most KML tags have no attributes.
        if name_len < content.len() {
            self.check_attributes(&element, before)?;
        }
        self.start(&element, span.local as usize - 1, before)?;
        if empty {
            self.end(at)?;
        }
        Ok(())
    }

    /// An end tag naming `name`: it must close the innermost open element.
    #[inline(always)]
    pub(super) fn end_tag(&mut self, name: &str, before: u64, at: u64) -> Result<(), Error> {
        let error = match self.open.innermost() {
            Some(open) if same_name(open.as_bytes(), name.as_bytes()) => return self.end(at),
            Some(open) => IllFormedError::MismatchedEndTag {
                expected: open.to_owned(),
                found: name.to_owned(),
            },
            None => IllFormedError::UnmatchedEndTag(name.to_owned()),
        };
        self.emitter.error_offset = Some(before);
        Err(xml_error(quick_xml::Error::IllFormed(error)))
    }

    pub(super) fn markup_too_long<T>(&mut self, before: u64) -> Result<T, Error> {
        self.fail_at(
            before,
            &format!(
                "markup longer than {} MiB (a tag, processing instruction or DOCTYPE)",
                MAX_MARKUP >> 20
            ),
        )
    }

    pub(super) fn check_cancel(&self) -> Result<(), Error> {
        match &self.cancel {
            Some(flag) if flag.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::new(ErrorKind::Cancelled, None))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn fail_at<T>(&mut self, offset: u64, message: &str) -> Result<T, Error> {
        self.emitter.error_offset = Some(offset);
        Err(Error::new(ErrorKind::Xml(message.to_string()), None))
    }

    /// Every attribute must be well formed and named once. quick-xml's own duplicate check
    /// allocates a list of names for every element that has an attribute; nearly all have
    /// one to four, whose names are compared here without.
    pub(super) fn check_attributes(&mut self, e: &BytesStart<'_>, at: u64) -> Result<(), Error> {
        const FEW: usize = 8;
        let mut attributes = e.attributes();
        let mut names: [&[u8]; FEW] = [&[]; FEW];
        for (seen, attribute) in attributes.with_checks(false).enumerate() {
            let name = match attribute {
                Ok(a) => a.key.into_inner().as_bytes(),
                Err(err) => return self.fail_at(at, &format!("bad attribute: {err}")),
            };
            if seen == FEW {
                // Many attributes: quick-xml's check, which hashes them.
                return match e.attributes().find_map(Result::err) {
                    Some(err) => self.fail_at(at, &format!("bad attribute: {err}")),
                    None => Ok(()),
                };
            }
            if let Some(first) = names[..seen].iter().find(|n| **n == name) {
                // Where quick-xml says it: offsets within the tag, its name included.
                let start = |n: &[u8]| n.as_ptr() as usize - e.as_ptr() as usize;
                let err = AttrError::Duplicated(start(name), start(first));
                return self.fail_at(at, &format!("bad attribute: {err}"));
            }
            names[seen] = name;
        }
        Ok(())
    }

    /// The character a reference stands for; `None` for an external entity, which is never
    /// fetched and so stands for nothing.
    pub(super) fn resolve_reference(
        &mut self,
        r: &BytesRef<'_>,
        at: u64,
    ) -> Result<Option<char>, Error> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(ch)) if is_xml_char(ch) => Ok(Some(ch)),
                _ => self.fail_at(at, &format!("invalid character reference &{};", &**r)),
            };
        }
        let ch = match &**r {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            name => {
                return match self.entities.iter().find(|(n, _)| n == name) {
                    Some((_, EntityKind::External)) => {
                        self.warn(at, format!("external entity &{name}; not read (kml2csv never fetches files or URLs named by a document)"))?;
                        Ok(None)
                    }
                    Some((_, EntityKind::Internal)) => self.fail_at(
                        at,
                        &format!("entity &{name}; is declared in the DTD: kml2csv does not expand DTD entities (they are how billion-laughs attacks work)"),
                    ),
                    None => self.fail_at(at, &format!("undefined entity &{name};")),
                };
            }
        };
        Ok(Some(ch))
    }

    /// Read character data straight from the stream up to the next `<` or `&`.
    pub(super) fn pump_text<R: Read>(
        &mut self,
        reader: &mut Reader<Tracked<R>>,
    ) -> Result<(), Error> {
        loop {
            let mut stream = reader.stream();
            let offset = stream.offset();
            let chunk = match stream.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) => return Err(io_error(e, None)),
            };
            if chunk.is_empty() {
                if !self.utf8_carry.is_empty() {
                    return self
                        .fail_at(offset, "invalid UTF-8: incomplete sequence at end of file");
                }
                return Ok(());
            }
            let run = text_run(chunk);
            let stop = run.stop.then_some(run.len);
            let n = run.len;
            // Only `<!` can open a comment or CDATA section: for a tag or a reference there is
            // no need to make sure nine bytes are in the buffer.
            let maybe_section = stop
                .is_some_and(|i| chunk[i] == b'<' && chunk.get(i + 1).is_none_or(|&b| b == b'!'));
            let piece = &chunk[..n];
            // Between tags, text is nearly always a line break and indentation that nobody
            // takes: white space passes every check, so it can be skipped unless the tokenizer
            // or a capture would see it or a UTF-8 sequence is waiting to be completed.
            let unwanted = self.coordinates.is_none()
                && self.capture.is_none()
                && self.utf8_carry.is_empty()
                && piece.iter().all(|&b| is_xml_space(b));
            if !piece.is_empty() && !unwanted {
                if !(run.plain && self.utf8_carry.is_empty()) {
                    self.check_chars(piece, offset)?;
                }
                self.text(piece, offset)?;
            }
            stream.consume(n);
            // Resolve positions while the buffer holding them is still here.
            self.emitter.flush_warnings(reader.get_mut());
            self.check_cancel()?;
            if stop.is_some() {
                if !self.utf8_carry.is_empty() {
                    return self.fail_at(offset + n as u64, "invalid UTF-8: incomplete sequence");
                }
                if !maybe_section {
                    return Ok(());
                }
                // Comments and CDATA sections are streamed here too: quick-xml would buffer
                // them whole, and a CDATA description can be as large as the file.
                let head = reader
                    .get_mut()
                    .fill_at_least(9)
                    .map_err(|e| io_error(e, None))?;
                if head.starts_with(b"<!--") {
                    self.stream_section(reader, Section::Comment)?;
                } else if head.starts_with(b"<![CDATA[") {
                    self.stream_section(reader, Section::CData)?;
                } else {
                    return Ok(());
                }
            }
        }
    }

    /// Stream a comment (checked and skipped) or a CDATA section (its content handed on as
    /// character data); the reader is at `<!--` or `<![CDATA[`.
    pub(super) fn stream_section<R: Read>(
        &mut self,
        reader: &mut Reader<Tracked<R>>,
        section: Section,
    ) -> Result<(), Error> {
        let start = reader.buffer_position();
        if section == Section::CData && self.depth() == 0 {
            return self.fail_at(start, "CDATA outside the root element");
        }
        reader.stream().consume(section.opener_len());
        loop {
            let offset = reader.buffer_position();
            let buf = reader
                .get_mut()
                .fill_at_least(3)
                .map_err(|e| io_error(e, None))?;
            if buf.len() < 3 {
                return self.fail_at(start, &format!("unclosed {}", section.name()));
            }
            let (content, consumed, done) = match section.find_end(buf) {
                Ok(found) => found,
                Err(bad) => {
                    return self
                        .fail_at(offset + bad as u64, "'--' is not allowed inside a comment")
                }
            };
            self.check_chars(&buf[..content], offset)?;
            if section == Section::CData {
                self.deliver(&buf[..content], offset)?;
            }
            reader.stream().consume(consumed);
            self.emitter.flush_warnings(reader.get_mut());
            self.check_cancel()?;
            if done {
                if !self.utf8_carry.is_empty() {
                    return self.fail_at(offset, "invalid UTF-8: incomplete sequence");
                }
                return Ok(());
            }
        }
    }

    /// Character data at `offset`: outside the root it must be white space.
    pub(super) fn text(&mut self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        if self.depth() == 0 {
            if let Some(i) = bytes.iter().position(|&b| !is_xml_space(b)) {
                let what = if self.root_seen {
                    "content after the root element"
                } else {
                    "text before the root element"
                };
                return self.fail_at(offset + i as u64, what);
            }
            return Ok(());
        }
        self.deliver(bytes, offset)
    }

    /// Hand character data to whoever wants it.
    pub(super) fn deliver(&mut self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        if self.coordinates.is_some() {
            let mut out = CoordinatesOut {
                emitter: &mut self.emitter,
                seq: &mut self.coord_seq,
            };
            return self.tokenizer.feed(bytes, offset, &mut out);
        }
        if self.capture.is_some() {
            // The pieces together were checked as UTF-8 (or come from quick-xml or a
            // reference), but one piece may end inside a character: complete it from the next.
            let mut bytes = bytes;
            if !self.capture_carry.is_empty() {
                let width = utf8_width(self.capture_carry[0]);
                let need = (width - self.capture_carry.len()).min(bytes.len());
                self.capture_carry.extend_from_slice(&bytes[..need]);
                bytes = &bytes[need..];
                if self.capture_carry.len() < width {
                    return Ok(());
                }
                let carried = std::mem::take(&mut self.capture_carry);
                self.capture_piece(&carried);
            }
            let whole = complete_chars(bytes);
            self.capture_carry.extend_from_slice(&bytes[whole..]);
            self.capture_piece(&bytes[..whole]);
        }
        Ok(())
    }

    /// Add whole characters to the captured text, up to [`MAX_CAPTURE`] bytes.
    pub(super) fn capture_piece(&mut self, bytes: &[u8]) {
        let room = MAX_CAPTURE.saturating_sub(self.captured.len());
        let keep = floor_char_boundary(bytes, room);
        if keep < bytes.len() {
            self.capture_truncated = true;
        }
        self.captured.push_str(utf8_or_empty(&bytes[..keep]));
    }

    /// XML text must be UTF-8 (after decoding) and free of control characters.
    pub(super) fn check_chars(&mut self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        let mut bytes = bytes;
        let mut offset = offset;
        if !self.utf8_carry.is_empty() {
            let width = utf8_width(self.utf8_carry[0]);
            let need = (width - self.utf8_carry.len()).min(bytes.len());
            self.utf8_carry.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            offset += need as u64;
            if self.utf8_carry.len() < width {
                return Ok(());
            }
            if std::str::from_utf8(&self.utf8_carry).is_err() {
                return self.fail_at(offset, "invalid UTF-8");
            }
            self.utf8_carry.clear();
        }
        let Some(first) = first_unusual_byte(bytes) else {
            return Ok(());
        };
        let rest = &bytes[first..];
        if let Some(i) = rest.iter().position(|&b| b < 0x20 && !is_xml_space(b)) {
            return self.fail_at(
                offset + (first + i) as u64,
                &format!("control character U+{:04X} is not allowed in XML", rest[i]),
            );
        }
        let (bytes, offset) = (rest, offset + first as u64);
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                self.utf8_carry.extend_from_slice(&bytes[e.valid_up_to()..]);
                Ok(())
            }
            Err(e) => self.fail_at(offset + e.valid_up_to() as u64, "invalid UTF-8"),
        }
    }
}

/// `bytes.starts_with(pattern)` for a pattern of known length, compared in place instead of by
/// a call to `memcmp`, which cost more than the compare.
#[inline(always)]
fn begins<const N: usize>(bytes: &[u8], pattern: &[u8; N]) -> bool {
    bytes.first_chunk::<N>().is_some_and(|head| head == pattern)
}
