pub struct AssetApi;
