import test from 'node:test';
import assert from 'node:assert/strict';
import { cleanText, countChars, compileSources, loadNewsSources, CLEAN_RULES, type CleanTextResult } from '../src/data/clean/index.ts';
import { UserError } from '../src/util/errors.ts';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Every removed character is accounted to exactly one rule. */
function checked(input: string): CleanTextResult {
  const r = cleanText(input);
  const total = CLEAN_RULES.reduce((s, k) => s + r.removed[k], 0);
  assert.equal(total, countChars(input) - countChars(r.text), `accounting for ${JSON.stringify(input)}`);
  for (const k of CLEAN_RULES) assert.ok(r.removed[k] >= 0, k);
  return r;
}

test('clean Vietnamese prose is left exactly as it is', () => {
  const prose = [
    'Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam, nằm ở trung tâm đồng bằng sông Hồng.',
    'Nhiệt độ trung bình năm khoảng 23,6 °C; lượng mưa 1.680 mm. Giá vé là 30.000 ₫ (khoảng 1,2 €).',
    '“Phở” – món ăn nổi tiếng – có nước dùng trong, bánh mềm… Ông Đặng Thùy Trâm (1942–1970) viết: «Đời phải trải qua giông tố».',
    'Ở độ cao 2.000 m², quả ổi, ủ ấm, ỷ lại, ỹ, Ưu tiên, ợ, Ữ, ẵ, ặ, ẳ, Ỵ, Đ đ Ă ă Ơ ơ Ư ư — tất cả đều giữ nguyên.',
  ].join('\n');
  const r = checked(prose);
  assert.equal(r.text, prose);
  for (const k of CLEAN_RULES) assert.equal(r.removed[k], 0, k);
});

test('NFC: decomposed Vietnamese becomes precomposed', () => {
  const decomposed = 'Vie\u0323\u0302t Nam co\u0301 nhie\u0302\u0300u ho\u0302\u0300 nu\u031bo\u031b\u0301c.';
  const r = checked(decomposed);
  assert.equal(r.text, 'Việt Nam có nhiều hồ nước.');
  assert.equal(r.text, r.text.normalize('NFC'));
  assert.equal(r.removed.nfc, countChars(decomposed) - countChars(decomposed.normalize('NFC')));
  assert.ok(r.removed.nfc > 0);
});

test('newspaper tags at the start are removed', () => {
  const cases: [string, string][] = [
    ['(Dân trí) - Sáng 12/3, Hà Nội đón đợt không khí lạnh mới.', 'Sáng 12/3, Hà Nội đón đợt không khí lạnh mới.'],
    ['TTO - Giá xăng trong nước giảm nhẹ từ chiều nay.', 'Giá xăng trong nước giảm nhẹ từ chiều nay.'],
    ['(NLĐO)-Bão số 3 đổ bộ vào Quảng Ninh.', 'Bão số 3 đổ bộ vào Quảng Ninh.'],
    ['VOV.VN - Quốc hội thông qua luật mới.', 'Quốc hội thông qua luật mới.'],
    ['Hà Nội (TTXVN) - Thủ tướng tiếp đoàn doanh nghiệp.', 'Thủ tướng tiếp đoàn doanh nghiệp.'],
    ['TP.HCM, 12/3 (VOV) – Mưa trái mùa bất ngờ.', 'Mưa trái mùa bất ngờ.'],
    ['(Dân Trí) — Học sinh đi học trở lại.', 'Học sinh đi học trở lại.'],
  ];
  for (const [input, want] of cases) {
    const r = checked(input);
    assert.equal(r.text, want, input);
    assert.equal(r.removed.newsTags, countChars(input) - countChars(want), input);
  }
});

test('trailing attribution lines are removed, sentences that cite a paper are kept', () => {
  const r = checked('Lúa mùa năm nay được mùa.\nNông dân rất phấn khởi.\nTheo VnExpress');
  assert.equal(r.text, 'Lúa mùa năm nay được mùa.\nNông dân rất phấn khởi.');
  assert.equal(r.removed.newsTags, 'Theo VnExpress'.length + 1);
  assert.equal(checked('Giá vàng tăng.\n(Theo Dân trí)\n').text, 'Giá vàng tăng.');
  assert.equal(checked('Giá vàng tăng.\nNguồn: Tuổi Trẻ').text, 'Giá vàng tăng.');
  assert.equal(checked('Giá vàng tăng.\nTheo VnExpress, Reuters').text, 'Giá vàng tăng.');
  // these are prose, not tags
  const keep = [
    'Theo VnExpress, người dân đổ về trung tâm thành phố xem pháo hoa.',
    'Đài Tiếng nói Việt Nam (VOV) – đài phát thanh quốc gia – ra đời năm 1945.',
    'Theo thống kê, dân số Hà Nội năm 2019 là hơn 8 triệu người.',
    'Báo Tuổi Trẻ ra số đầu tiên năm 1975.',
    'Tuổi trẻ - tài sản quý nhất của đời người.',
  ];
  for (const k of keep) assert.equal(checked(k).text, k, k);
});

test('the sources file is user-extensible', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vilm-clean-'));
  const f = path.join(dir, 'sources.yaml');
  writeFileSync(f, 'names: [Báo Làng Tôi]\nbare_tags: [BLT]\n');
  const sources = loadNewsSources(f);
  assert.equal(cleanText('(Báo Làng Tôi) - Hội làng mở cửa.', { sources }).text, 'Hội làng mở cửa.');
  assert.equal(cleanText('BLT - Hội làng mở cửa.', { sources }).text, 'Hội làng mở cửa.');
  // the default list is not active in this file
  assert.equal(cleanText('TTO - Hội làng mở cửa.', { sources }).text, 'TTO - Hội làng mở cửa.');
  assert.equal(cleanText('TTO - Hội làng mở cửa.', { sources: compileSources([], []) }).text, 'TTO - Hội làng mở cửa.');
  writeFileSync(f, 'names: Dân trí\n');
  assert.throws(() => loadNewsSources(f), (e: unknown) => e instanceof UserError && e.message.includes(f) && e.message.includes("'names'"));
  writeFileSync(f, 'nams: [x]\n');
  assert.throws(() => loadNewsSources(f), (e: unknown) => e instanceof UserError && e.message.includes("unknown field 'nams'"));
  assert.throws(() => loadNewsSources(path.join(dir, 'missing.yaml')), UserError);
});

test('characters outside Latin, digits, punctuation and whitespace are removed', () => {
  const cases: [string, string, number][] = [
    // on a line where something was removed, the space it leaves before punctuation goes too
    ['Phở bò 🍜 rất ngon 😋!', 'Phở bò rất ngon!', 2],
    ['Chữ Hán 漢字 của từ "Việt Nam" là 越南.', 'Chữ Hán của từ "Việt Nam" là.', 4],
    // brackets emptied by the removal go with it (counted to the same rule)
    ['Hà Nội (河内) là thủ đô.', 'Hà Nội là thủ đô.', 4],
    ['Từ "cà phê" phát âm là [kaː˨˩ fe˧].', 'Từ "cà phê" phát âm là [ka fe].', 4],
    ['Tiếng Nga: Москва, tiếng Hy Lạp: Αθήνα, tiếng Thái: กรุงเทพ.', 'Tiếng Nga:, tiếng Hy Lạp:, tiếng Thái:.', 18],
    ['Mũi tên → và ngôi sao ★ bị bỏ.', 'Mũi tên và ngôi sao bị bỏ.', 2],
    ['Khoảng\u200btrắng ẩn\u00ad và dấu\u2060 nối.', 'Khoảngtrắng ẩn và dấu nối.', 3],
    ['IPA ɛ̃ và ə̀ bị bỏ cùng dấu của chúng.', 'IPA và bị bỏ cùng dấu của chúng.', 4],
  ];
  for (const [input, want, n] of cases) {
    const r = checked(input);
    assert.equal(r.text, want, input);
    assert.equal(r.removed.nonLatin, n, input);
  }
});

test('combining marks stay on Latin letters only', () => {
  // n̄ (no precomposed form) keeps its macron; a mark after a space or a removed letter goes
  assert.equal(checked('Ký hiệu n̄ trong toán học.').text, 'Ký hiệu n̄ trong toán học.');
  assert.equal(checked('Dấu \u0301 lạc.').text, 'Dấu lạc.');
  assert.equal(checked('Số 5\u0303 kỳ lạ.').text, 'Số 5 kỳ lạ.');
});

test('whitespace: CRLF, tabs, NBSP and runs of spaces', () => {
  const r = checked('Sông  Hồng\tchảy\u00a0qua Hà Nội.  \r\nSông Đà   là phụ lưu.\r\n');
  assert.equal(r.text, 'Sông Hồng chảy qua Hà Nội.\nSông Đà là phụ lưu.');
  assert.ok(r.removed.whitespace > 0);
});

test('wiki reference sections go with their body; other headings keep their title', () => {
  const input = [
    'Vịnh Hạ Long là một vịnh nhỏ thuộc phần bờ tây vịnh Bắc Bộ.',
    '',
    '== Lịch sử ==',
    'Năm 1994, vịnh được UNESCO công nhận là di sản thiên nhiên thế giới.',
    '=== Truyền thuyết ===',
    'Tương truyền rồng mẹ đưa đàn rồng con xuống giúp dân đánh giặc.',
    '== Xem thêm ==',
    'Vịnh Lan Hạ',
    '=== Danh sách đảo ===',
    'Đảo Tuần Châu',
    '== Tham khảo ==',
    '== Liên kết ngoài ==',
    'Trang chính thức của Ban quản lý vịnh',
    '== Ghi chú và tham khảo ==',
    'abc',
  ].join('\r\n');
  const r = checked(input);
  assert.equal(r.text, [
    'Vịnh Hạ Long là một vịnh nhỏ thuộc phần bờ tây vịnh Bắc Bộ.',
    'Lịch sử',
    'Năm 1994, vịnh được UNESCO công nhận là di sản thiên nhiên thế giới.',
    'Truyền thuyết',
    'Tương truyền rồng mẹ đưa đàn rồng con xuống giúp dân đánh giặc.',
  ].join('\n'));
  assert.ok(r.removed.wikiSections > 0);
  // kept headings lose only their markup: '== ' + ' ==' and '=== ' + ' ==='
  assert.equal(r.removed.wikiHeadings, 6 + 8);
  // a heading whose section is empty goes away entirely
  assert.equal(checked('Mở đầu đoạn văn.\n== Địa lý ==\n== Khí hậu ==\nNóng ẩm.').text, 'Mở đầu đoạn văn.\nKhí hậu\nNóng ẩm.');
  // "=" inside prose is not a heading
  const eq = 'Công thức a = b + c == d được giữ.';
  assert.equal(checked(eq).text, eq);
});

test('empty lines and exact duplicate paragraphs are removed, repeated headings are kept', () => {
  const p = 'Chè là thức uống quen thuộc của người Việt.';
  const r = checked(`${p}\n\n\n${p}\nChè xanh Thái Nguyên nổi tiếng.\n${p}`);
  assert.equal(r.text, `${p}\nChè xanh Thái Nguyên nổi tiếng.`);
  assert.equal(r.removed.duplicateParagraphs, 2 * (countChars(p) + 1));
  assert.equal(r.removed.emptyLines, 2);
  const months = checked('== Năm 2019 ==\n=== Tháng 1 ===\nSự kiện A.\n== Năm 2020 ==\n=== Tháng 1 ===\nSự kiện B.');
  assert.equal(months.text, 'Năm 2019\nTháng 1\nSự kiện A.\nNăm 2020\nTháng 1\nSự kiện B.');
  // a paragraph that differs only by one character is not a duplicate
  assert.equal(checked('Trời mưa.\nTrời mưa!').text, 'Trời mưa.\nTrời mưa!');
});

test('a document of nothing but noise cleans to the empty string with exact accounting', () => {
  const r = checked('😀😀\n\n== Tham khảo ==\nabc\n');
  assert.equal(r.text, '');
});
