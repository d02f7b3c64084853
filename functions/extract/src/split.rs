//! Big objects in parallel: a plain CSV or NDJSON object over `SPLIT_SIZE` is cut into ranges
//! that start at line starts, each read by its own invocation. One pass over the object
//! (its pieces counted side by side) finds the line number at each cut, and the CSV header is
//! read from the object's start, so each range's passengers have the ids, sources and reasons
//! of a single read. A CSV line start after an odd number of quote characters is inside a
//! quoted field (a doubled quote counts twice, so the parity holds): no cut is made there.

use crate::csv_rows;
use crate::fetch::{read_failed, read_range};
use crate::rows::{Checkpoint, InputFormat};
use crate::settings::CsvOptions;
use crate::sniff::Sniffed;
use busline_core::StopError;
use busline_core::ports::ObjectStore;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

/// Pieces counted at once.
const PIECES_AT_ONCE: usize = 4;
/// The most of an object's start read to find its CSV header.
const HEAD_BYTES: u64 = 1 << 20;

/// The object a ticket names, as the split sees it.
pub(crate) struct BigObject<'a> {
    pub objects: &'a dyn ObjectStore,
    pub key: &'a str,
    pub size: u64,
    pub format: InputFormat,
}

/// Where an object may be cut.
enum Cuts {
    /// At any line start: no line break is inside a field.
    AtLineStarts,
    /// At a line start after an even number of this quote character.
    OutsideQuotes(u8),
    /// Nowhere: it is read whole.
    Nowhere,
}

impl BigObject<'_> {
    fn cuts(&self, csv: &CsvOptions) -> Cuts {
        match (self.format, csv.quote) {
            // JSON strings hold no raw line breaks; nor does CSV read without quoting.
            (InputFormat::Ndjson, _) | (InputFormat::Csv, None) => Cuts::AtLineStarts,
            // An escape character (as in `\"`) breaks the parity of quotes.
            (InputFormat::Csv, Some(_)) if csv.quoted_newlines || csv.escape.is_some() => {
                Cuts::Nowhere
            }
            (InputFormat::Csv, Some(quote)) => Cuts::OutsideQuotes(quote),
            (InputFormat::JsonArray | InputFormat::Parquet, _) => Cuts::Nowhere,
        }
    }
}

/// The ranges to read `object` as when it is over `split_size`, in order; `None` when it is
/// read whole: not over the size, not plain CSV or NDJSON (compressed bytes, a CSV whose
/// settings say its records may span lines or that escapes quotes), a header that does not
/// fit [`HEAD_BYTES`], or no record start past the first piece.
pub(crate) async fn ranges(
    object: &BigObject<'_>,
    split_size: u64,
    csv: &CsvOptions,
) -> Result<Option<Vec<Checkpoint>>, StopError> {
    let quote = match object.cuts(csv) {
        Cuts::Nowhere => return Ok(None),
        Cuts::AtLineStarts => None,
        Cuts::OutsideQuotes(quote) => Some(quote),
    };
    if object.size <= split_size || split_size == 0 {
        return Ok(None);
    }
    let head_len = object.size.min(HEAD_BYTES);
    let head = read_range(object.objects, object.key, 0, head_len).await?;
    if Sniffed::of(&head) != Sniffed::Plain {
        return Ok(None);
    }
    let header = match object.format {
        InputFormat::Csv if csv.header => {
            match csv_rows::columns_in(&head, head_len == object.size, csv, object.key) {
                Some(names) => Some(names),
                None => return Ok(None),
            }
        }
        _ => None,
    };
    let starts: Vec<u64> = (0..object.size).step_by(split_size as usize).collect();
    let pieces: Vec<Piece> = futures::stream::iter(starts)
        .map(|start| count_piece(object, quote, start, split_size.min(object.size - start)))
        .buffered(PIECES_AT_ONCE)
        .try_collect()
        .await?;
    let cuts = cut(object.size, &pieces);
    if cuts.len() < 2 {
        return Ok(None);
    }
    Ok(Some(
        cuts.into_iter()
            .map(|cut| cut.checkpoint(&header))
            .collect(),
    ))
}

/// What one piece of an object holds: its newlines and the offset of the first, and its
/// quote characters and how many come before that first newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Piece {
    newlines: u64,
    first_newline: Option<u64>,
    quotes: u64,
    quotes_before_first: u64,
}

/// One range: from a line start (`offset`, the line's number) to where the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    offset: u64,
    line: u64,
    end: u64,
}

impl Cut {
    /// The checkpoint a ranged ticket starts from; a range after the first knows the header.
    fn checkpoint(self, header: &Option<Vec<String>>) -> Checkpoint {
        Checkpoint {
            offset: self.offset,
            line: self.line,
            header: if self.offset > 0 {
                header.clone()
            } else {
                None
            },
            decompressed: false,
            end: Some(self.end),
        }
    }
}

/// The ranges of an object of `size` bytes: the first from its start, each later one from the
/// line start after the first newline of a piece, when an even number of quotes comes before
/// it (a piece without such a newline joins the range before).
fn cut(size: u64, pieces: &[Piece]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let (mut offset, mut line) = (0, 1);
    let (mut newlines_before, mut quotes_before) = (0, 0);
    for (index, piece) in pieces.iter().enumerate() {
        let outside_quotes = (quotes_before + piece.quotes_before_first) % 2 == 0;
        if index > 0
            && outside_quotes
            && let Some(first) = piece.first_newline
            && first + 1 < size
        {
            cuts.push(Cut {
                offset,
                line,
                end: first + 1,
            });
            // The line after the piece's first newline.
            (offset, line) = (first + 1, newlines_before + 2);
        }
        newlines_before += piece.newlines;
        quotes_before += piece.quotes;
    }
    cuts.push(Cut {
        offset,
        line,
        end: size,
    });
    cuts
}

/// Counts the newlines (and `quote` characters) of `length` bytes from `start`.
async fn count_piece(
    object: &BigObject<'_>,
    quote: Option<u8>,
    start: u64,
    length: u64,
) -> Result<Piece, StopError> {
    let mut reader = object.objects.get_range(object.key, start, length).await?;
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut piece, mut read) = (Piece::default(), 0u64);
    let quotes_in =
        |bytes: &[u8]| quote.map_or(0, |q| memchr::memchr_iter(q, bytes).count() as u64);
    loop {
        let n = reader
            .read(&mut buffer)
            .await
            .map_err(|err| read_failed(object.key, err))?;
        if n == 0 {
            return Ok(piece);
        }
        let mut newlines = memchr::memchr_iter(b'\n', &buffer[..n]);
        if piece.first_newline.is_none()
            && let Some(first) = newlines.next()
        {
            piece.first_newline = Some(start + read + first as u64);
            piece.quotes_before_first = piece.quotes + quotes_in(&buffer[..first]);
            piece.newlines += 1;
        }
        piece.newlines += newlines.count() as u64;
        piece.quotes += quotes_in(&buffer[..n]);
        read += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(newlines: u64, first_newline: Option<u64>) -> Piece {
        Piece {
            newlines,
            first_newline,
            ..Piece::default()
        }
    }

    fn cut_at(offset: u64, line: u64, end: u64) -> Cut {
        Cut { offset, line, end }
    }

    #[test]
    fn ranges_start_after_each_pieces_first_newline_with_its_line_number() {
        // "a\nbb\nccc\ndddd\n" in pieces of 5 bytes: [0,5) [5,10) [10,14).
        let pieces = [piece(2, Some(1)), piece(1, Some(8)), piece(1, Some(13))];
        assert_eq!(
            cut(14, &pieces),
            [cut_at(0, 1, 9), cut_at(9, 4, 14)],
            "the last piece's newline ends the object: no empty range"
        );
    }

    #[test]
    fn a_piece_without_a_newline_joins_the_range_before() {
        let pieces = [piece(1, Some(0)), piece(0, None), piece(2, Some(21))];
        assert_eq!(cut(40, &pieces), [cut_at(0, 1, 22), cut_at(22, 3, 40)]);
        assert_eq!(
            cut(40, &[piece(0, None), piece(0, None)]),
            [cut_at(0, 1, 40)]
        );
    }

    #[test]
    fn no_cut_is_made_after_an_odd_number_of_quotes() {
        // The second piece's first newline follows one quote: it is inside a quoted field.
        // The third's follows four (one in the first piece, two in the second, one before
        // it): a record starts after it.
        let quoted = |newlines, first, quotes, quotes_before_first| Piece {
            newlines,
            first_newline: Some(first),
            quotes,
            quotes_before_first,
        };
        let pieces = [quoted(1, 2, 1, 0), quoted(2, 13, 2, 0), quoted(1, 25, 2, 1)];
        assert_eq!(cut(30, &pieces), [cut_at(0, 1, 26), cut_at(26, 5, 30)]);
    }
}
