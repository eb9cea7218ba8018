// The import page: a chosen file larger than the server accepts is refused before it is sent.
const input = document.getElementById("import-file");
if (input) {
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    const max = Number(input.dataset.maxBytes);
    const tooLarge = file && file.size > max;
    input.setCustomValidity(tooLarge ? `The file is larger than ${input.dataset.maxMib} MiB; split the epic or trim it.` : "");
    input.reportValidity();
  });
}
