/** The otpauth:// URI as a QR code, rendered on the server as an SVG data URL (no external asset). */
import QRCode from 'qrcode';

export async function qrDataUrl(text: string): Promise<string> {
  const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return 'data:image/svg+xml;base64,' + Buffer.from(svg).toString('base64');
}
