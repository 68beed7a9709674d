/**
 * Shared by the eval/predict tests: a small real run directory — a byte-level BPE tokenizer
 * trained (by src/tokenizer) on a few Vietnamese paragraphs, configs/test.yaml, random-init
 * weights — saved with saveCheckpoint.
 */
import path from 'node:path';
import { loadConfig, type RunConfig } from '../../src/config/index.ts';
import { buildLayout, initParams } from '../../src/model/layout.ts';
import { createOptimizer } from '../../src/optim/index.ts';
import { trainTokenizer } from '../../src/tokenizer/index.ts';
import type { Tokenizer } from '../../src/tokenizer/types.ts';
import { saveCheckpoint, type Checkpoint } from '../../src/train/checkpoint.ts';

export const VI_TEXTS = [
  'Việt Nam là một quốc gia nằm ở phía đông bán đảo Đông Dương thuộc khu vực Đông Nam Á. Thủ đô là Hà Nội, thành phố lớn nhất là Thành phố Hồ Chí Minh.',
  'Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam, nằm ở trung tâm đồng bằng sông Hồng. Thành phố có lịch sử hơn một nghìn năm.',
  'Sông Mê Kông chảy qua sáu quốc gia trước khi đổ ra Biển Đông. Đồng bằng sông Cửu Long là vựa lúa lớn nhất của cả nước.',
  'Tiếng Việt là ngôn ngữ chính thức. Chữ Quốc ngữ dùng bảng chữ cái Latinh với các dấu thanh: sắc, huyền, hỏi, ngã, nặng.',
  'Phở là món ăn truyền thống nổi tiếng, gồm bánh phở, nước dùng và thịt bò hoặc thịt gà. Người dân thường ăn phở vào buổi sáng.',
  'Vịnh Hạ Long được UNESCO công nhận là di sản thiên nhiên thế giới năm 1994 với hàng nghìn hòn đảo đá vôi lớn nhỏ.',
  'Khí hậu miền Bắc có bốn mùa xuân, hạ, thu, đông; miền Nam nóng quanh năm với hai mùa mưa và khô rõ rệt.',
  'Nền kinh tế phát triển nhanh sau Đổi Mới năm 1986. Nông nghiệp, công nghiệp chế biến và du lịch đóng vai trò quan trọng.',
];

export interface TestRun {
  runDir: string;
  ck: Checkpoint;
  tokenizer: Tokenizer;
  cfg: RunConfig;
}

export async function makeTestRun(dir: string, edit?: (cfg: RunConfig, weights: Float32Array) => void): Promise<TestRun> {
  const cfg = loadConfig('configs/test.yaml');
  const tok = await trainTokenizer(VI_TEXTS, { vocabSize: cfg.model.vocab_size });
  const layout = buildLayout(cfg.model);
  const weights = initParams(layout, cfg.model, 3);
  edit?.(cfg, weights);
  const ck: Checkpoint = {
    config: cfg, step: 0, weights, optimizer: createOptimizer(cfg.train, layout.total).getState(),
    sampler: null, rng: null, tokenizerJson: tok.json, meta: { note: 'random init for tests' },
  };
  const runDir = path.join(dir, 'run');
  await saveCheckpoint(runDir, ck);
  return { runDir, ck, tokenizer: tok, cfg };
}
