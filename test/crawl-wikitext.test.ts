import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wikitextToPlain, isRedirect, removeTemplates, removeTables, replaceLinks } from '../src/data/crawl/wikitext.ts';

// A page shaped like a real viwiki article: infobox, references, file with a linked caption,
// table, categories in Vietnamese and English, interlanguage links, headings, lists.
const ARTICLE = `{{Thông tin khu dân cư
| tên = Hội An
| hình = Hoi An.jpg
| dân số = {{formatnum:121716}}<ref name="ds2019">{{chú thích web|url=https://gso.gov.vn|tiêu đề=Dân số}}</ref>
}}
{{Bài cùng tên|Hội An (định hướng)}}
'''Hội An''' là một [[thành phố]] trực thuộc tỉnh [[Quảng Nam]], [[Việt Nam]].<ref>Sách địa chí Quảng Nam, tr. 12.</ref> Phố cổ ''Hội An'' được [[UNESCO|Tổ chức Giáo dục, Khoa học và Văn hóa Liên Hiệp Quốc]] công nhận là [[Di sản thế giới]] năm 1999.<ref name="unesco" />
<!-- ghi chú ẩn: không hiện ra -->
[[Tập tin:Chua Cau Hoi An.jpg|nhỏ|phải|[[Chùa Cầu]] về đêm, biểu tượng của [[Hội An]]]]
[[Hình:Hoi An lantern.jpg|thumb|Đèn lồng]]
[[File:Old map.png|200px]]

== Lịch sử ==
Thời [[Chăm Pa]], nơi đây là cảng thị [[Lâm Ấp Phố]] {{lang|en|Champa port}}.
Theo [http://hoian.gov.vn Cổng thông tin Hội An], thành phố có nhiều di tích.&nbsp;Xem thêm [https://example.org].

=== Thế kỷ 17 ===
* Thương nhân [[Nhật Bản|người Nhật]] và [[Trung Quốc|người Hoa]] đến buôn bán.
* Năm 1999 được công nhận.

{| class="wikitable"
|-
! Năm !! Dân số
|-
| 2009 || 89.716
|}

== Tham khảo ==
{{Tham khảo|30em}}
<references />

== Liên kết ngoài ==
* [http://www.hoian.gov.vn Trang chính thức]

{{Sơ khai Việt Nam}}
[[Thể loại:Thành phố Quảng Nam]]
[[Thể loại:Di sản thế giới tại Việt Nam]]
[[Category:Cities in Vietnam]]
[[Bản mẫu:Hộp thông tin]]
[[en:Hội An]]
[[fr:Hội An]]
[[zh-yue:會安]]`;

test('a realistic Vietnamese article becomes plain text with headings', () => {
  const t = wikitextToPlain(ARTICLE);
  const expected = [
    'Hội An là một thành phố trực thuộc tỉnh Quảng Nam, Việt Nam. Phố cổ Hội An được Tổ chức Giáo dục, Khoa học và Văn hóa Liên Hiệp Quốc công nhận là Di sản thế giới năm 1999.',
    '',
    '== Lịch sử ==',
    'Thời Chăm Pa, nơi đây là cảng thị Lâm Ấp Phố.',
    'Theo Cổng thông tin Hội An, thành phố có nhiều di tích. Xem thêm.',
    '',
    '=== Thế kỷ 17 ===',
    'Thương nhân người Nhật và người Hoa đến buôn bán.',
    'Năm 1999 được công nhận.',
    '',
    '== Tham khảo ==',
    '',
    '== Liên kết ngoài ==',
    'Trang chính thức',
  ].join('\n');
  assert.equal(t, expected);
});

test('nothing of the hidden markup leaks: namespaces, refs, templates, tables, interlanguage', () => {
  const t = wikitextToPlain(ARTICLE);
  for (const leak of ['Tập tin', 'Hình:', 'Thể loại', 'Category', 'Bản mẫu', 'Chùa Cầu', 'Đèn lồng', 'ds2019', 'Sách địa chí',
    'chú thích', 'formatnum', 'wikitable', '89.716', 'ghi chú ẩn', 'Champa port', '會安', 'Cities in Vietnam', '{', '}', '[', ']', "''", '<', '>', '&nbsp;']) {
    assert.ok(!t.includes(leak), `leaked ${JSON.stringify(leak)} in:\n${t}`);
  }
});

test('redirects (English and Vietnamese keywords) give empty text', () => {
  for (const r of ['#REDIRECT [[Hà Nội]]', '#redirect[[Hà Nội]]', '#đổi [[Thành phố Hồ Chí Minh]]', '  #ĐỔI [[Huế]]', '#Đổi hướng [[Huế]]']) {
    assert.ok(isRedirect(r), r);
    assert.equal(wikitextToPlain(r), '');
  }
  // text that merely contains the word is not a redirect
  assert.ok(!isRedirect('Sông Hồng đổi dòng nhiều lần.'));
  assert.equal(wikitextToPlain('Sông Hồng đổi dòng nhiều lần.'), 'Sông Hồng đổi dòng nhiều lần.');
});

test('nested templates, parser functions and parameters are removed; unbalanced braces do not eat the page', () => {
  assert.equal(removeTemplates('a{{x|{{y|{{z}}}}|k=[[l]]}}b'), 'ab');
  assert.equal(removeTemplates('a{{#if:{{{1|}}}|có|không}}b'), 'ab');
  assert.equal(removeTemplates('trước {{{tên}}} sau'), 'trước  sau');
  assert.equal(removeTemplates('mở {{ mà không đóng. Đoạn sau {{x}} vẫn còn.'), 'mở {{ mà không đóng. Đoạn sau  vẫn còn.');
});

test('nested and indented tables are removed; text around them stays', () => {
  const s = 'trên\n{| class="a"\n| ô 1\n{|\n| lồng\n|}\n| ô 2\n|}\ndưới';
  assert.equal(removeTables(s), 'trên\ndưới');
  assert.equal(removeTables('a\n:{| class="b"\n| ô\n|}\nb'), 'a\nb');
});

test('links: label, target, pipe trick, link trail, leading colon, sections, sister projects', () => {
  assert.equal(replaceLinks('[[Hà Nội]]'), 'Hà Nội');
  assert.equal(replaceLinks('[[Hà Nội|thủ đô]]'), 'thủ đô');
  assert.equal(replaceLinks('[[Huế (định hướng)|]]'), 'Huế');
  assert.equal(replaceLinks('[[sông]]s'), 'sôngs');
  assert.equal(replaceLinks('[[:Thể loại:Sông Việt Nam|các sông]]'), 'các sông');
  assert.equal(replaceLinks('[[:Thể loại:Sông Việt Nam]]'), 'Thể loại:Sông Việt Nam');
  assert.equal(replaceLinks('[[Hà Nội#Lịch sử|lịch sử Hà Nội]]'), 'lịch sử Hà Nội');
  assert.equal(replaceLinks('[[wikt:phở|phở]]'), 'phở');
  assert.equal(replaceLinks('[[Star Wars: Tập IV]]'), 'Star Wars: Tập IV');
  assert.equal(replaceLinks('a [[thể loại:Huế]] [[HÌNH:x.png|y]] [[image:z.svg]] [[Phương tiện:a.ogg]] b'), 'a     b');
  assert.equal(replaceLinks('a [[Tập tin:Hue.jpg|nhỏ|Ảnh từ [http://hue.vn cổng Huế] và [[Huế]]]] b'), 'a  b');
  assert.equal(replaceLinks('[[[gỗ]] và [[[[Huế]]]]'), '[gỗ và [[Huế]]');
  assert.equal(replaceLinks('x [[ja:ハノイ]] [[zh-min-nan:Hô-lāi]] [[simple:Hanoi]] y'), 'x    y');
});

test('bold/italic, HTML tags, entities, comments, math and gallery', () => {
  assert.equal(wikitextToPlain("'''''Phở''''' là ''món ăn'' '''Việt'''"), 'Phở là món ăn Việt');
  assert.equal(wikitextToPlain("l''''Hôtel''' de Ville"), "l'Hôtel de Ville");
  assert.equal(wikitextToPlain('Nhiệt độ 30&nbsp;°C &ndash; cao<br/>dòng mới <span style="color:red">đỏ</span> <small>nhỏ</small>'),
    'Nhiệt độ 30 °C – cao\ndòng mới đỏ nhỏ');
  assert.equal(wikitextToPlain('Công thức <math>E = mc^2</math> nổi tiếng.<!-- chú thích\nnhiều dòng -->'), 'Công thức nổi tiếng.');
  assert.equal(wikitextToPlain('Ảnh:\n<gallery>\nTập tin:A.jpg|Chú thích A\n</gallery>\nHết.'), 'Ảnh:\n\nHết.');
  assert.equal(wikitextToPlain('a &#7853; &#x1EA1; &amp;lt; b'), 'a ậ ạ &lt; b');
});

test('headings keep their level; lists and rules lose their markers; blank runs collapse', () => {
  const t = wikitextToPlain('Mở đầu.\n\n\n\n==Địa lý==\n# một\n## hai\n: thụt lề\n----\n; Thuật ngữ\n==== Khí hậu  ====\nNóng ẩm.');
  assert.equal(t, 'Mở đầu.\n\n== Địa lý ==\nmột\nhai\nthụt lề\nThuật ngữ\n==== Khí hậu ====\nNóng ẩm.');
});

test('definition lists whose term was a template keep their description', () => {
  assert.equal(wikitextToPlain('; {{Nihongo|Kanō Minako|叶 美奈子}}\n: Lồng tiếng bởi: Sora Amamiya<ref name="c"/>\n; {{Nihongo|Kitō Miho|鬼頭 ミホ}}: Một thành viên khác.'),
    'Lồng tiếng bởi: Sora Amamiya\nMột thành viên khác.');
});

test('empty brackets left by removed pronunciation templates are tidied', () => {
  assert.equal(wikitextToPlain("'''Hà Nội''' ({{IPA|vi|hâː˨˩ noj˧˨ʔ}}) là thủ đô."), 'Hà Nội là thủ đô.');
  assert.equal(wikitextToPlain("'''Huế''' (phát âm: {{IPA|hwe}}; {{lang-en|Hue}}) là cố đô."), 'Huế (phát âm:) là cố đô.');
});
